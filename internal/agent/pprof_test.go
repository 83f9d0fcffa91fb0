package agent

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestPprofOnlyWhenMounted(t *testing.T) {
	get := func(mux *http.ServeMux, path string) (int, string) {
		srv := httptest.NewServer(mux)
		defer srv.Close()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get(http.NewServeMux(), "/debug/pprof/heap?debug=1"); code != http.StatusNotFound {
		t.Errorf("without the flag: status %d, want 404", code)
	}
	mux := http.NewServeMux()
	mountPprof(mux)
	code, body := get(mux, "/debug/pprof/heap?debug=1")
	if code != http.StatusOK || !strings.Contains(body, "heap profile:") {
		t.Errorf("mounted: status %d, body %.80q", code, body)
	}
	if code, body := get(mux, "/debug/pprof/goroutine?debug=1"); code != http.StatusOK || !strings.Contains(body, "TestPprofOnlyWhenMounted") {
		t.Errorf("goroutine profile: status %d, body %.80q", code, body)
	}
}
