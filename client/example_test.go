package client_test

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/tally-billing/tally/client"
)

// The README's example: meter an action; on 402, the link that sells what
// was missing (with a portal key), then the same request again.
func Example() {
	ctx := context.Background()
	tally := client.New("http://127.0.0.1:8080", os.Getenv("TALLY_KEY"))
	portalClient := client.New("http://127.0.0.1:8080", os.Getenv("TALLY_PORTAL_KEY"))
	returnURL := "https://app.example.com/resume"

	req := &client.UsageRequest{Customer: "user_123", Feature: "image.generate", Quantity: client.Units(1)}
	_, err := tally.Usage(ctx, req) // sent again with req.IdempotencyKey after network errors and 5xx
	var e *client.Error
	if errors.As(err, &e) && e.Type == client.InsufficientCredits {
		link, _ := portalClient.TopUpLink(ctx, e, "user_123", returnURL)
		fmt.Println("send the customer to", link.URL, "then retry", req.IdempotencyKey)
	}
}
