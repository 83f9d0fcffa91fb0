package http

import (
	"fmt"
	"strings"
	"testing"
)

func TestTemplate(t *testing.T) {
	cases := map[string]string{
		"":               "/",
		"/":              "/",
		"*":              "*",
		"/api/users/42":  "/api/users/{id}",
		"/api/users/42/": "/api/users/{id}/",
		"/orders/550e8400-e29b-41d4-a716-446655440000/items": "/orders/{uuid}/items",
		"/blob/9f86d081884c7d65":                             "/blob/{hex}",
		"/blob/deadbeefdeadbeef":                             "/blob/{hex}",
		"/static/app.css":                                    "/static/app.css",
		"/v1/health":                                         "/v1/health",
		"/reports/2024-01-31":                                "/reports/{id}",
		"/files/cafe":                                        "/files/cafe",
		"/s/aZ3kQ9xY2mP7vB1nL8wR4tU6":                        "/s/{token}",
		"/u/user12345abc":                                    "/u/{token}",
		"/download/readme-first-please":                      "/download/readme-first-please",
		"/a/b/c/d/e/f/g/h/i/j":                               "/a/b/c/d/e/f/g/h/{rest}",
		"//double":                                           "//double",
		"/" + strings.Repeat("word", 40):                     "/{token}",
	}
	for in, want := range cases {
		if got := Template(in); got != want {
			t.Errorf("Template(%q) = %q, want %q", in, got, want)
		}
	}
	long := strings.Repeat("/segment-name-xyz", 9)
	if got := Template(long); len(got) > maxRouteBytes || !strings.HasSuffix(got, "{rest}") {
		t.Errorf("Template(long) = %q (%d bytes)", got, len(got))
	}
}

func TestRoutesCap(t *testing.T) {
	r := NewRoutes(3, 2)
	for i := 0; i < 50; i++ { // one template whatever the id
		if got := r.Route("api", fmt.Sprintf("/users/%d", i)); got != "/users/{id}" {
			t.Fatalf("got %q", got)
		}
	}
	want := []string{"/a", "/b", OtherRoute, OtherRoute, "/users/{id}"}
	for i, p := range []string{"/a", "/b", "/c", "/d", "/users/7"} {
		if got := r.Route("api", p); got != want[i] {
			t.Fatalf("%s: got %q want %q", p, got, want[i])
		}
	}
	if r.Route("web", "/c") != "/c" || r.Route("third", "/x") != OtherRoute {
		t.Fatal("service cap")
	}
	if r.Folds() != 3 {
		t.Fatalf("folds %d, want 3", r.Folds())
	}
	r.Forget("web")
	if r.Route("third", "/x") != "/x" {
		t.Fatal("Forget did not free the slot")
	}
}
