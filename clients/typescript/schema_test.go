package typescript

import (
	"bytes"
	"os"
	"testing"
)

// TestSchemaFresh: src/schema.ts is what GenerateSchema makes of
// handlers/openapi.json now (TALLY_UPDATE=1 rewrites it).
func TestSchemaFresh(t *testing.T) {
	doc, err := os.ReadFile("../../handlers/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	want, err := GenerateSchema(doc)
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv("TALLY_UPDATE") != "" {
		if err := os.WriteFile("src/schema.ts", want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile("src/schema.ts")
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("src/schema.ts is not generated from handlers/openapi.json as it is now: run TALLY_UPDATE=1 go test ./clients/typescript -run TestSchemaFresh (%v)", err)
	}
}
