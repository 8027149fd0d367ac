package static

import (
	"bytes"
	"compress/gzip"
	"regexp"
	"testing"
)

// TestWidgetSize: widget.js, which product pages load, stays under 10 KB
// even before minifying (so minified it is smaller still), and the size
// is printed: go test ./static -run TestWidgetSize -v.
func TestWidgetSize(t *testing.T) {
	const budget = 10 * 1024
	for _, name := range []string{"widget.js", "embed.js"} {
		b, err := ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		// A crude minification (comments and indentation out), to report
		// roughly what a minifier would serve.
		min := regexp.MustCompile(`(?s)/\*.*?\*/`).ReplaceAll(b, nil)
		min = regexp.MustCompile(`(?m)^\s+|\s*//[^"\n]*$`).ReplaceAll(min, nil)
		var gz bytes.Buffer
		w := gzip.NewWriter(&gz)
		w.Write(b)
		w.Close()
		t.Logf("%s: %d bytes as served, %d bytes without comments and indentation, %d bytes gzipped", name, len(b), len(min), gz.Len())
		if len(b) >= budget {
			t.Errorf("%s is %d bytes, over the %d-byte budget", name, len(b), budget)
		}
		if bytes.Contains(b, []byte("import ")) || bytes.Contains(b, []byte("require(")) {
			t.Errorf("%s loads another module: it must have no dependencies", name)
		}
	}
}
