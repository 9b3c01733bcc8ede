package publish

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"time"
)

// PublishTCP sends m to a control port in the JSON framing (one object per
// line), after "auth <secret>" when secret is set, and reads the answer.
func PublishTCP(ctx context.Context, addr, secret string, m Message) (*Result, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("control port: %w", err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	} else {
		c.SetDeadline(time.Now().Add(30 * time.Second))
	}
	line, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	var out []byte
	if secret != "" {
		out = append(out, "auth "+secret+"\n"...)
	}
	out = append(append(out, line...), '\n')
	if _, err := c.Write(out); err != nil {
		return nil, fmt.Errorf("control port: %w", err)
	}
	r := bufio.NewReader(c)
	for {
		reply, err := r.ReadString('\n')
		if err != nil {
			return nil, fmt.Errorf("control port: no answer: %w", err)
		}
		if strings.HasPrefix(reply, `{"auth"`) {
			continue
		}
		var res struct {
			Result
			Error string `json:"error"`
		}
		if err := json.Unmarshal([]byte(reply), &res); err != nil {
			return nil, fmt.Errorf("control port: bad answer %q", reply)
		}
		if res.Error != "" {
			return nil, &Error{Status: 0, Message: res.Error}
		}
		return &res.Result, nil
	}
}
