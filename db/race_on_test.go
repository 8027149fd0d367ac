//go:build race

package db

// raceEnabled: the tests run under the race detector (go test -race), which
// makes every step several times slower: cadences are not measured then.
const raceEnabled = true
