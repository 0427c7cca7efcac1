package callrelay

import "regexp"

// sidRe is a Twilio SID: a two-letter prefix naming the resource and 32 hex digits. Twilio
// writes lowercase hex; its API spec (twilio_api_v2010.json) allows either case.
var sidRe = regexp.MustCompile(`^[A-Z]{2}[0-9a-fA-F]{32}$`)

// ValidSID reports whether s is a SID of the resource prefix names ("CA" a call, "RE" a
// recording...).
func ValidSID(prefix, s string) bool {
	return len(s) == 34 && s[:2] == prefix && sidRe.MatchString(s)
}

// WebhookSIDs are the webhook parameters that carry a SID, with the prefix of each. Twilio's
// signature concatenates names and values without separators, so a signed form can be replayed
// with its parameter boundaries shifted (CallSid=CA…CallStatusringing): checking every SID's
// shape refuses such a form before its made-up SID reaches the store.
var WebhookSIDs = []struct{ Param, Prefix string }{
	{"AccountSid", "AC"},
	{"CallSid", "CA"},
	{"ParentCallSid", "CA"},
	{"DialCallSid", "CA"},
	{"CallSidEndingConference", "CA"},
	{"ConferenceSid", "CF"},
	{"RecordingSid", "RE"},
	{"TranscriptionSid", "TR"},
	{"QueueSid", "QU"},
}
