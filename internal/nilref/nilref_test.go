package nilref_test

import (
	"io"
	"net/http"
	"testing"

	"github.com/fxws/websocket/internal/nilref"
)

func TestIs(t *testing.T) {
	var mux *http.ServeMux
	var rc io.ReadCloser = (*nopReadCloser)(nil)
	var fn func()
	for _, c := range []struct {
		name string
		v    any
		want bool
	}{
		{"nil", nil, true},
		{"nil pointer", mux, true},
		{"interface holding a nil pointer", rc, true},
		{"nil func", fn, true},
		{"pointer", http.NewServeMux(), false},
		{"struct", struct{}{}, false},
		{"zero int", 0, false},
	} {
		if got := nilref.Is(c.v); got != c.want {
			t.Errorf("%s: Is = %v, want %v", c.name, got, c.want)
		}
	}
}

type nopReadCloser struct{}

func (*nopReadCloser) Read([]byte) (int, error) { return 0, io.EOF }
func (*nopReadCloser) Close() error             { return nil }
