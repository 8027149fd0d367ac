// Package static embeds Tally's front-end assets: the built Tailwind CSS,
// the small app.js (with the live balance's event stream) and htmx,
// vendored from npm. Assets
// are served under fingerprinted names (app.3f2a9c1d.css) with a one-year
// immutable cache, so a new build is fetched at once and an old one never.
package static

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
)

//go:embed app.css app.js embed.js widget.js favicon.svg vendor/*.js
var files embed.FS

// Assets maps logical names ("app.css") to fingerprinted URLs and serves them.
type Assets struct {
	urls   map[string]string // logical name -> /static/name.hash.ext
	byHash map[string]string // name.hash.ext -> logical name
}

// New fingerprints every embedded file.
func New() *Assets {
	a := &Assets{urls: map[string]string{}, byHash: map[string]string{}}
	fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := files.ReadFile(p)
		sum := sha256.Sum256(b)
		ext := path.Ext(p)
		fp := strings.TrimSuffix(p, ext) + "." + hex.EncodeToString(sum[:4]) + ext
		a.urls[p] = "/static/" + fp
		a.byHash[fp] = p
		return nil
	})
	return a
}

// URL is the fingerprinted URL of a logical asset name; it panics on a name
// that is not embedded, which the page tests catch.
func (a *Assets) URL(name string) string {
	u, ok := a.urls[name]
	if !ok {
		panic("static: no asset " + name)
	}
	return u
}

// ServeHTTP serves /static/<fingerprinted name>; unknown or stale names are 404.
func (a *Assets) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	fp := strings.TrimPrefix(r.URL.Path, "/static/")
	name, ok := a.byHash[fp]
	if !ok {
		http.NotFound(w, r)
		return
	}
	b, err := files.ReadFile(name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	if ct := mime.TypeByExtension(path.Ext(name)); ct != "" {
		w.Header().Set("Content-Type", ct)
	}
	w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Write(b)
}

// ReadFile returns an embedded file by its logical name (widget.js, which
// product pages load by its plain name).
func ReadFile(name string) ([]byte, error) { return files.ReadFile(name) }
