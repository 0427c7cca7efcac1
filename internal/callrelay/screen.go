package callrelay

import "time"

// ScreenedCall is what a screen needs of the caller's call.
type ScreenedCall struct {
	Routing Routing
	Number  string // the masked number
	From    string // the caller
	Status  string
	Mode    string
	Callee  string // the leg that took the call, "" while none has
}

// ScreenEvent is a step of a leg's screen.
type ScreenEvent struct {
	CallSid       string // the leg
	ParentCallSid string // the caller's call
	Target        string // the leg's To
	TargetIndex   int
	Screen        string // ScreenPress or ScreenAnnounce
	Outcome       string // ScreenOffered, ScreenAccepted, ...
	AnsweredBy    string // Twilio's AnsweredBy, when machine detection ran
	Digits        string // the key pressed, if any
	At            time.Time
}
