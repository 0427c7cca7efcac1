package phone

import "testing"

func TestShow(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		number, home string
		want         Shown
	}{
		// Same country: national format.
		{"+15559870000", "+15551230000", Shown{"(555) 987-0000", "tel:+15559870000"}},
		{"+442079460000", "+442079461111", Shown{"020 7946 0000", "tel:+442079460000"}},
		// Another country: international format.
		{"+442079460000", "+15551230000", Shown{"+44 20 7946 0000", "tel:+442079460000"}},
		{"+15559870000", "+442079461111", Shown{"+1 555-987-0000", "tel:+15559870000"}},
		{"+33612345678", "+15551230000", Shown{"+33 6 12 34 56 78", "tel:+33612345678"}},
		// Withheld: no number, no link.
		{"", "+15551230000", Shown{Withheld, ""}},
		{"+266696687", "+15551230000", Shown{Withheld, ""}},
		{"+7378742833", "+15551230000", Shown{Withheld, ""}},
		{"+2562533", "+15551230000", Shown{Withheld, ""}},
		{"+86282452253", "+15551230000", Shown{Withheld, ""}},
		{"+8656696", "+15551230000", Shown{Withheld, ""}},
		{"anonymous", "+15551230000", Shown{Withheld, ""}},
		{"Anonymous", "+15551230000", Shown{Withheld, ""}},
		{"restricted", "+15551230000", Shown{Withheld, ""}},
		{"unknown", "+15551230000", Shown{Withheld, ""}},
		{" ", "+15551230000", Shown{Withheld, ""}},
		// Not a number libphonenumber reads (a SIP caller): shown cleaned, no link.
		{"sip:alice@example.com\u202e", "+15551230000", Shown{"sip:alice@example.com", ""}},
	} {
		if got := Show(tc.number, tc.home); got != tc.want {
			t.Errorf("Show(%q, %q) = %+v, want %+v", tc.number, tc.home, got, tc.want)
		}
	}
}

func TestClean(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		max  int
		want string
	}{
		{"JOHN SMITH", 64, "JOHN SMITH"},
		{"  JOHN \t\r\n SMITH  ", 64, "JOHN SMITH"},
		{"evil\u202egnp.exe", 64, "evilgnp.exe"},         // RIGHT-TO-LEFT OVERRIDE
		{"a\u2066b\u2069c\u200bd\u200fe", 64, "abcde"},   // isolates, zero width space, RLM
		{"a\x00b\x1bc\x7fd", 64, "abcd"},                 // NUL, ESC, DEL
		{"caf\xc3\xa9 \xff\xfe", 64, "café"},             // invalid UTF-8 dropped
		{"Ünïcödé 名前", 64, "Ünïcödé 名前"},                 // letters kept
		{"abcdefghij", 4, "abcd"},                        // cut in runes
		{"ab cdef", 3, "ab"},                             // no trailing space after a cut
		{"名前名前名前", 2, "名前"},                              // cut in runes, not bytes
		{"line\u2028sep\u2029para", 64, "line sep para"}, // line and paragraph separators are spaces
	} {
		if got := Clean(tc.in, tc.max); got != tc.want {
			t.Errorf("Clean(%q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
		}
	}
}
