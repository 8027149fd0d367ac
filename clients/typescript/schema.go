// Package typescript holds the TypeScript client (src/, built with tsc)
// and, in Go, what keeps it honest: the generator of src/schema.ts from
// handlers/openapi.json, and the test that builds the client and runs its
// node tests against a real `tally serve`.
package typescript

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// GenerateSchema writes a TypeScript type for every schema of the OpenAPI
// description's components: src/schema.ts, which the client's types use,
// so a field the API renames or drops fails tsc.
func GenerateSchema(openapi []byte) ([]byte, error) {
	var doc struct {
		Components struct {
			Schemas map[string]json.RawMessage `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(openapi, &doc); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString("// Generated from handlers/openapi.json by clients/typescript/schema.go: do not edit.\n")
	b.WriteString("// Regenerate: TALLY_UPDATE=1 go test ./clients/typescript -run TestSchemaFresh\n")
	names := make([]string, 0, len(doc.Components.Schemas))
	for n := range doc.Components.Schemas {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		var s map[string]any
		if err := json.Unmarshal(doc.Components.Schemas[n], &s); err != nil {
			return nil, fmt.Errorf("%s: %w", n, err)
		}
		if d, ok := s["description"].(string); ok {
			fmt.Fprintf(&b, "\n/** %s */\n", strings.ReplaceAll(d, "*/", "* /"))
		} else {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "export type %s = %s;\n", n, tsType(s, ""))
	}
	return b.Bytes(), nil
}

// onlyConstraints reports whether every alternative only constrains the
// schema beside it (such as "one of quantity or quantities is required"),
// adding no type of its own: the schema's own type stands.
func onlyConstraints(alts []any) bool {
	for _, a := range alts {
		m, _ := a.(map[string]any)
		for k := range m {
			if k != "required" && k != "description" {
				return false
			}
		}
	}
	return true
}

// tsType is the TypeScript type of a JSON schema.
func tsType(s map[string]any, indent string) string {
	if ref, ok := s["$ref"].(string); ok {
		return ref[strings.LastIndex(ref, "/")+1:]
	}
	if c, ok := s["const"]; ok {
		return literal(c)
	}
	if e, ok := s["enum"].([]any); ok {
		var parts []string
		for _, v := range e {
			parts = append(parts, literal(v))
		}
		return strings.Join(parts, " | ")
	}
	for _, k := range []string{"oneOf", "anyOf"} {
		if alts, ok := s[k].([]any); ok && !onlyConstraints(alts) {
			var parts []string
			for _, a := range alts {
				parts = append(parts, tsType(a.(map[string]any), indent))
			}
			return strings.Join(uniq(parts), " | ")
		}
	}
	if all, ok := s["allOf"].([]any); ok {
		var parts []string
		for _, a := range all {
			parts = append(parts, tsType(a.(map[string]any), indent))
		}
		return strings.Join(parts, " & ")
	}
	switch t := s["type"].(type) {
	case []any:
		var parts []string
		for _, x := range t {
			c := map[string]any{}
			for k, v := range s {
				c[k] = v
			}
			c["type"] = x
			parts = append(parts, tsType(c, indent))
		}
		return strings.Join(uniq(parts), " | ")
	case string:
		switch t {
		case "string":
			return "string"
		case "number", "integer":
			return "number"
		case "boolean":
			return "boolean"
		case "null":
			return "null"
		case "array":
			item := "unknown"
			if it, ok := s["items"].(map[string]any); ok {
				item = tsType(it, indent)
			}
			if strings.Contains(item, " ") {
				item = "(" + item + ")"
			}
			return item + "[]"
		case "object":
			return object(s, indent)
		}
	}
	if _, ok := s["properties"]; ok {
		return object(s, indent)
	}
	return "unknown"
}

func object(s map[string]any, indent string) string {
	props, _ := s["properties"].(map[string]any)
	if len(props) == 0 {
		if ap, ok := s["additionalProperties"].(map[string]any); ok {
			return "Record<string, " + tsType(ap, indent) + ">"
		}
		return "Record<string, unknown>"
	}
	required := map[string]bool{}
	if r, ok := s["required"].([]any); ok {
		for _, x := range r {
			required[x.(string)] = true
		}
	}
	keys := make([]string, 0, len(props))
	for k := range props {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	b.WriteString("{\n")
	for _, k := range keys {
		p := props[k].(map[string]any)
		if d, ok := p["description"].(string); ok {
			fmt.Fprintf(&b, "%s  /** %s */\n", indent, strings.ReplaceAll(strings.ReplaceAll(d, "*/", "* /"), "\n", " "))
		}
		opt := "?"
		if required[k] {
			opt = ""
		}
		fmt.Fprintf(&b, "%s  %s%s: %s;\n", indent, k, opt, tsType(p, indent+"  "))
	}
	b.WriteString(indent + "}")
	return b.String()
}

func literal(v any) string {
	switch x := v.(type) {
	case string:
		return strconv.Quote(x)
	case nil:
		return "null"
	default:
		b, _ := json.Marshal(x)
		return string(b)
	}
}

func uniq(xs []string) []string {
	var out []string
	for _, x := range xs {
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}
