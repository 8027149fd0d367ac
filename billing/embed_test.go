package billing

import "testing"

func TestParseOrigin(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"https://app.example.com", "https://app.example.com"},
		{"HTTPS://App.Example.com/", "https://app.example.com"},
		{"https://app.example.com:443", "https://app.example.com"},
		{"http://localhost:3000", "http://localhost:3000"},
		{"http://127.0.0.1:80", "http://127.0.0.1"},
		{"http://[::1]:8080", "http://[::1]:8080"},
	} {
		got, err := ParseOrigin(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseOrigin(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", "app.example.com", "ftp://x.com", "https://x.com/path", "https://x.com?q=1", "https://x.com#f",
		"https://user:pw@x.com", "javascript:alert(1)", "https://", "https://*.x.com", "null"} {
		if got, err := ParseOrigin(in); ErrorCode(err) != CodeValidation {
			t.Errorf("ParseOrigin(%q) = %q, %v; want validation_failed", in, got, err)
		}
	}
}
