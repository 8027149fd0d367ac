// Package notify holds the consumers of the event outbox that tell the
// world outside: outbound webhooks (Webhooks) and customer e-mail (Mail).
// Each reads the outbox from a cursor of its own and resumes after a
// restart; neither is on the debit path.
package notify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Standard Webhooks headers (https://www.standardwebhooks.com).
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// Sign is one Standard Webhooks signature: "v1," and the base64 HMAC-SHA256
// of "<msgID>.<unix seconds>.<body>", keyed with the base64-decoded part of
// the secret after "whsec_".
func Sign(secret, msgID string, ts time.Time, body []byte) (string, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return "", fmt.Errorf("notify: the webhook secret is not base64 after whsec_: %w", err)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(msgID + "." + strconv.FormatInt(ts.Unix(), 10) + "."))
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil)), nil
}

// SignatureHeader signs with every secret and joins the signatures with
// spaces, as the specification allows, so a receiver that still has the
// secret before a rotation verifies as well as one with the new secret.
func SignatureHeader(secrets []string, msgID string, ts time.Time, body []byte) (string, error) {
	sigs := make([]string, 0, len(secrets))
	for _, s := range secrets {
		sig, err := Sign(s, msgID, ts, body)
		if err != nil {
			return "", err
		}
		sigs = append(sigs, sig)
	}
	return strings.Join(sigs, " "), nil
}
