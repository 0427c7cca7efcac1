package server

import (
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/callrelay/callrelay/internal/callrelay"
	"github.com/callrelay/callrelay/internal/recording"
)

// The owners' inbox: the voicemail email's button opens /inbox/voicemails/{id} with a signed,
// expiring owner token (recording.Links.OwnerPageURL: who, until when). The token opens the
// voicemails and missed calls of that owner's numbers and nothing else; there is no password.
// An expired or altered link gets a page that says so.

// owner checks the request's owner token. It answers the refusal page itself.
func (c *console) owner(w http.ResponseWriter, r *http.Request) (string, recording.OwnerToken, bool) {
	t := recording.OwnerTokenFrom(r.URL.Query())
	email, err := "", recording.ErrLinkInvalid
	if c.links != nil {
		email, err = c.links.VerifyOwner(t)
	}
	switch {
	case errors.Is(err, recording.ErrLinkExpired):
		c.tmpl.render(w, r, http.StatusGone, "link", consolePage{Title: "This link has expired",
			Data: "The link in your voicemail email has expired."})
		return "", t, false
	case err != nil:
		c.tmpl.render(w, r, http.StatusForbidden, "link", consolePage{Title: "This link is not valid",
			Data: "This link is incomplete or was changed: open it again from your voicemail email."})
		return "", t, false
	}
	return email, t, true
}

// inboxCSRF is the inbox's double-submitted CSRF token: a cookie set with the page, and the
// forms' field.
func (c *console) inboxCSRF(w http.ResponseWriter, r *http.Request) string {
	if ck, err := r.Cookie(inboxCSRFCookie); err == nil && len(ck.Value) == 43 {
		return ck.Value
	}
	token := randomToken()
	http.SetCookie(w, c.cookie(inboxCSRFCookie, token, "/inbox", SessionTTL))
	return token
}

func (c *console) inboxPage(w http.ResponseWriter, r *http.Request, title, email string, t recording.OwnerToken) consolePage {
	return consolePage{Title: title, Nav: "inbox", Owner: email, OwnerQuery: ownerQuery(t), OwnerToken: t.Query(),
		CSRF: c.inboxCSRF(w, r), FieldErrors: map[string]string{}, Form: r.URL.Query()}
}

// ownedVoicemail loads the {id} voicemail if it is the owner's; another's is "not found", the
// same as one that does not exist.
func (c *console) ownedVoicemail(r *http.Request, email string) (*callrelay.ConsoleVoicemail, error) {
	id, err := voicemailID(r)
	if err != nil {
		return nil, err
	}
	vm, err := c.db.GetConsoleVoicemail(r.Context(), id)
	if err != nil {
		return nil, err
	}
	if !strings.EqualFold(vm.OwnerEmail, email) {
		return nil, callrelay.Errorf(callrelay.ENOTFOUND, "Voicemail %d is unknown.", id)
	}
	return vm, nil
}

func (c *console) handleInboxVoicemail() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		email, t, ok := c.owner(w, r)
		if !ok {
			return
		}
		c.renderInboxVoicemail(w, r, http.StatusOK, email, t, "")
	})
}

func (c *console) renderInboxVoicemail(w http.ResponseWriter, r *http.Request, status int, email string, t recording.OwnerToken, errMsg string) {
	vm, err := c.ownedVoicemail(r, email)
	p := c.inboxPage(w, r, "Voicemail", email, t)
	if err != nil {
		p.Data = errorText(r, err)
		c.tmpl.render(w, r, statusOf(callrelay.ErrorCode(err)), "link", p)
		return
	}
	p.Data = vmRow{VM: vm, Base: "/inbox", Query: p.OwnerQuery, CSRF: p.CSRF, Err: errMsg}
	c.tmpl.render(w, r, status, "voicemail", p)
}

func (c *console) handleInboxHandled() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		email, t, ok := c.owner(w, r)
		if !ok {
			return
		}
		var want string
		if ck, err := r.Cookie(inboxCSRFCookie); err == nil {
			want = ck.Value
		}
		if !c.checkForm(w, r, want) {
			return
		}
		vm, err := c.ownedVoicemail(r, email)
		if err == nil {
			_, err = c.db.MarkVoicemailHandled(r.Context(), vm.ID, email)
		}
		if err != nil {
			c.renderInboxVoicemail(w, r, statusOf(callrelay.ErrorCode(err)), email, t, errorText(r, err))
			return
		}
		http.Redirect(w, r, "/inbox/voicemails/"+itoa64(vm.ID)+"?"+t.Query().Encode(), http.StatusSeeOther)
	})
}

func (c *console) handleInboxAudio() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		email, err := "", recording.ErrLinkInvalid
		if c.links != nil {
			email, err = c.links.VerifyOwner(recording.OwnerTokenFrom(r.URL.Query()))
		}
		if err != nil {
			http.Error(w, "This link is invalid or has expired.", http.StatusForbidden)
			return
		}
		vm, err := c.ownedVoicemail(r, email)
		if err == nil {
			err = serveAudio(w, r, c.audio, vm.Voicemail, c.stall)
		}
		if err != nil {
			http.Error(w, errorText(r, err), statusOf(callrelay.ErrorCode(err)))
		}
	})
}

// handleInbox lists the owner's recent voicemails and missed calls, of all their numbers or
// one.
func (c *console) handleInbox() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		email, t, ok := c.owner(w, r)
		if !ok {
			return
		}
		p := c.inboxPage(w, r, "Your voicemails", email, t)
		numbers, err := c.db.OwnerNumbers(r.Context(), email)
		if err != nil {
			c.fail(w, r, err)
			return
		}
		p.Numbers = numbers
		number := r.URL.Query().Get("number")
		if number != "" && !slices.Contains(numbers, number) {
			number = "" // not one of theirs: all of theirs
		}
		status := r.URL.Query().Get("status")
		if !slices.Contains([]string{"", callrelay.VoicemailNew, callrelay.VoicemailHandled, callrelay.VoicemailDeleted}, status) {
			status = ""
		}
		vms, err := c.db.ListConsoleVoicemails(r.Context(), callrelay.ConsoleVoicemailFilter{Number: number, OwnerEmail: email, Status: status, Limit: 50})
		if err != nil {
			c.fail(w, r, err)
			return
		}
		rows := make([]vmRow, len(vms))
		for i, vm := range vms {
			rows[i] = vmRow{VM: vm, Base: "/inbox", Query: p.OwnerQuery, CSRF: p.CSRF}
		}
		p.Data = rows
		if p.Missed, err = c.db.ListMissedCalls(r.Context(), number, email, 50); err != nil {
			c.fail(w, r, err)
			return
		}
		c.tmpl.render(w, r, http.StatusOK, "voicemails", p)
	})
}
