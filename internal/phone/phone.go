// Package phone shows phone numbers and caller names to people: national format for a caller
// in the masked number's own country, international otherwise (libphonenumber's rules, through
// github.com/nyaruka/phonenumbers), a tel: link, and "Withheld number" for Twilio's sentinels.
package phone

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/nyaruka/phonenumbers"
)

// Withheld is what a caller without a usable number reads as.
const Withheld = "Withheld number"

// withheldSentinels are the From values Twilio sends for a caller whose number is withheld or
// unknown: the keypad spellings of ANONYMOUS, RESTRICTED, BLOCKED, UNAVAIL and UNKNOWN
// (Twilio's help article "Why am I getting calls from these strange numbers?"), the words some
// carriers pass through, and the empty string.
var withheldSentinels = map[string]bool{
	"":             true,
	"+266696687":   true, // ANONYMOUS
	"+7378742833":  true, // RESTRICTED
	"+2562533":     true, // BLOCKED
	"+8656696":     true, // UNAVAIL
	"+86282452253": true, // UNKNOWN
	"anonymous":    true,
	"restricted":   true,
	"unknown":      true,
	"blocked":      true,
	"private":      true,
	"unavailable":  true,
}

// IsWithheld reports whether from is not a number that can be called back.
func IsWithheld(from string) bool {
	return withheldSentinels[strings.ToLower(strings.TrimSpace(from))]
}

// Shown is a number as an owner reads it.
type Shown struct {
	Text string // "(555) 987-0000", "+44 20 7946 0000", or Withheld
	Href string // "tel:+15559870000"; empty when there is nothing to call back
}

// Show formats number for the owner of the masked number home (both E.164): national format
// when both are in the same country, international otherwise. A withheld caller reads
// Withheld with no link; anything libphonenumber cannot parse is shown cleaned, with no link.
func Show(number, home string) Shown {
	if IsWithheld(number) {
		return Shown{Text: Withheld}
	}
	n, err := phonenumbers.Parse(number, "")
	if err != nil {
		return Shown{Text: Clean(number, 32)}
	}
	e164 := phonenumbers.Format(n, phonenumbers.E164)
	href := "tel:" + e164
	if !phonenumbers.IsPossibleNumber(n) {
		return Shown{Text: e164, Href: href}
	}
	// By country calling code, not region: the fictional 555 numbers have no region, and a
	// caller anywhere in the North American plan dials a +1 number the national way.
	if h, err := phonenumbers.Parse(home, ""); err == nil && n.GetCountryCode() == h.GetCountryCode() {
		return Shown{Text: phonenumbers.Format(n, phonenumbers.NATIONAL), Href: href}
	}
	return Shown{Text: phonenumbers.Format(n, phonenumbers.INTERNATIONAL), Href: href}
}

// Clean returns s fit to show in a Subject or beside a number: valid UTF-8, without control,
// format (bidi overrides, zero-width) or other invisible characters, spaces collapsed, cut to
// max runes. A name that could reorder or hide the text around it is shown as plain text.
func Clean(s string, max int) string {
	var b strings.Builder
	space := false
	n := 0
	for _, r := range strings.ToValidUTF8(s, "") {
		switch {
		case unicode.IsSpace(r):
			space = b.Len() > 0
			continue
		case r == utf8.RuneError, unicode.Is(unicode.Cc, r), unicode.Is(unicode.Cf, r),
			unicode.Is(unicode.Co, r), unicode.Is(unicode.Cs, r), unicode.Is(unicode.Zl, r), unicode.Is(unicode.Zp, r):
			continue
		}
		if n >= max {
			break
		}
		if space {
			b.WriteByte(' ')
			n++
			space = false
			if n >= max {
				break
			}
		}
		b.WriteRune(r)
		n++
	}
	return strings.TrimSpace(b.String())
}
