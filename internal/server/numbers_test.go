package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"testing"
)

// TestProbe_ListNumbersPages: GET /api/numbers answers a page, as GET /api/calls does (?limit=,
// 1 to 500, default 50), with the link to the next page; walking the links lists every number
// once. A bad limit or after is a 400 naming it.
func TestProbe_ListNumbersPages(t *testing.T) {
	s := newTestServer(t)
	var want []string
	for i := range 7 {
		n := fmt.Sprintf("+1555000%04d", 7-i)
		s.putNumber(n, threeTargets)
		want = append([]string{n}, want...)
	}
	type page struct {
		Numbers []struct {
			Number string `json:"number"`
		} `json:"numbers"`
		Next *string `json:"next"`
	}
	get := func(path string) page {
		t.Helper()
		rec := s.api(http.MethodGet, path, "")
		if rec.Code != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, rec.Code, rec.Body)
		}
		var p page
		if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var got []string
	path, pages := "/api/numbers?limit=3", 0
	for {
		p := get(path)
		if len(p.Numbers) > 3 {
			t.Fatalf("GET %s: %d numbers, want at most 3", path, len(p.Numbers))
		}
		for _, n := range p.Numbers {
			got = append(got, n.Number)
		}
		if pages++; p.Next == nil || pages > 5 {
			break
		}
		path = *p.Next
	}
	if pages != 3 || !slices.Equal(got, want) {
		t.Errorf("%d pages listing %v, want 3 pages listing %v", pages, got, want)
	}
	if p := get("/api/numbers"); len(p.Numbers) != 7 || p.Next != nil {
		t.Errorf("default page: %d numbers, next %v; want all 7, no next", len(p.Numbers), p.Next)
	}

	for path, field := range map[string]string{
		"/api/numbers?limit=0": "limit", "/api/numbers?limit=501": "limit", "/api/numbers?limit=ten": "limit",
		"/api/numbers?after=15550001": "after", "/api/numbers?after=+15550001": "after",
	} {
		rec := s.api(http.MethodGet, path, "")
		var e struct {
			Error struct{ Code, Field string } `json:"error"`
		}
		_ = json.Unmarshal(rec.Body.Bytes(), &e)
		if rec.Code != http.StatusBadRequest || e.Error.Field != field {
			t.Errorf("GET %s: %d %s, want 400 naming %s", path, rec.Code, rec.Body, field)
		}
	}
}
