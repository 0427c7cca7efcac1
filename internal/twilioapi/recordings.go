package twilioapi

import "context"

// DeleteRecording deletes a recording (RE… SID) at Twilio, audio and all. A recording that is
// already gone answers an error for which IsNotFound is true: callers that only want it gone
// take that as done.
func (c *Client) DeleteRecording(ctx context.Context, recordingSid string) error {
	api, cancel := c.api(ctx)
	defer cancel()
	if err := api.DeleteRecording(recordingSid, nil); err != nil {
		return upstream("delete the recording", err)
	}
	return nil
}
