package views

import (
	"strings"
	"testing"
)

// TestWidgetAccentText: labels on the accent colour read at 4.5:1: white
// on dark accents, near-black on light ones.
func TestWidgetAccentText(t *testing.T) {
	for accent, text := range map[string]string{"": "#ffffff", "#4f46e5": "#ffffff", "#0ea5e9": "#111827", "#fde047": "#111827", "#000": "#ffffff", "#fff": "#111827"} {
		if got := widgetStyle(Widget{Accent: accent}); !strings.HasSuffix(got, "--accent-text:"+text) {
			t.Errorf("accent %q: %s, want text %s", accent, got, text)
		}
	}
}
