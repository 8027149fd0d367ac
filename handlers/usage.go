package handlers

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/tally-billing/tally/billing"
)

// POST /api/v1/usage meters one action.
func (s *Server) createUsage(c echo.Context) error {
	var req billing.UsageRequest
	if err := DecodeJSON(c.Request().Body, &req); err != nil {
		return err
	}
	if err := idempotencyKey(c, &req.IdempotencyKey); err != nil {
		return err
	}
	req.APIKey = apiKey(c)
	d, err := s.ledger.Debit(c.Request().Context(), req)
	if err != nil {
		return s.offerTopUp(c.Request().Context(), req.Customer, err)
	}
	s.metrics.debited(d)
	return created(c, d.Replayed, d)
}

// MaxBatch is the most events one batch request may carry.
const MaxBatch = 1000

type batchRequest struct {
	Events []json.RawMessage `json:"events"`
}

type batchResult struct {
	Status   int            `json:"status"`
	Replayed bool           `json:"replayed,omitempty"`
	Debit    *billing.Debit `json:"debit,omitempty"`
	Error    map[string]any `json:"error,omitempty"`
}

// POST /api/v1/usage/batch meters up to 1,000 actions; each is atomic on its
// own and has its own result, in request order. The answer is 200 whenever
// the batch itself was well-formed.
func (s *Server) createUsageBatch(c echo.Context) error {
	var br batchRequest
	if err := DecodeJSON(c.Request().Body, &br); err != nil {
		return err
	}
	if len(br.Events) == 0 {
		return billing.Errorf(billing.CodeInvalidRequest, "events must hold at least one usage event").With("param", "events")
	}
	if len(br.Events) > MaxBatch {
		return billing.Errorf(billing.CodeInvalidRequest, "events holds %d events; the most one batch may carry is %d", len(br.Events), MaxBatch).With("param", "events")
	}
	results := make([]batchResult, len(br.Events))
	reqs := make([]billing.UsageRequest, 0, len(br.Events))
	idx := make([]int, 0, len(br.Events))
	key := apiKey(c)
	for i, raw := range br.Events {
		var r billing.UsageRequest
		if err := decodeBytes(raw, &r); err != nil {
			s.metrics.rejected(err)
			results[i] = errorResult(err)
			continue
		}
		r.APIKey = key
		reqs = append(reqs, r)
		idx = append(idx, i)
	}
	debits, errs := s.ledger.DebitMany(c.Request().Context(), reqs)
	offers := &topUpOffers{s: s, ctx: c.Request().Context()}
	for j, i := range idx {
		if errs[j] != nil {
			s.metrics.rejected(errs[j])
			// A refusal for credits offers a pack, as POST /usage's does.
			results[i] = errorResult(offers.offer(reqs[j].Customer, errs[j]))
			continue
		}
		d := debits[j]
		s.metrics.debited(d)
		results[i] = batchResult{Status: http.StatusCreated, Replayed: d.Replayed, Debit: &d}
	}
	return writeJSON(c, http.StatusOK, map[string]any{"object": "list", "data": results})
}

func errorResult(err error) batchResult {
	return batchResult{Status: Status(err), Error: errorBody(err)["error"].(map[string]any)}
}

// GET /api/v1/quote?customer&feature&quantity prices an action without
// writing anything. quantity defaults to 1; a feature priced per dimension
// takes quantities[DIMENSION]=N instead (one parameter per dimension).
func (s *Server) quote(c echo.Context) error {
	var qs billing.Quantities
	for name, vals := range c.QueryParams() {
		dim, ok := strings.CutPrefix(name, "quantities[")
		if !ok {
			continue
		}
		dim, ok = strings.CutSuffix(dim, "]")
		if !ok || len(vals) != 1 {
			return billing.Errorf(billing.CodeInvalidRequest, "write one quantities[DIMENSION]=N parameter per dimension, such as quantities[input_tokens]=1200").With("param", "quantities")
		}
		q, err := billing.ParseQuantity(vals[0])
		if err != nil {
			return billing.Errorf(billing.CodeInvalidRequest, "quantities[%s]: %s", dim, billing.ErrorMessage(err)).With("param", "quantities."+dim)
		}
		if qs == nil {
			qs = billing.Quantities{}
		}
		qs[dim] = q
	}
	var q *billing.Quantity
	if v := c.QueryParam("quantity"); v != "" {
		n, err := billing.ParseQuantity(v)
		if err != nil {
			return billing.Errorf(billing.CodeInvalidRequest, "quantity: %s", billing.ErrorMessage(err)).With("param", "quantity")
		}
		q = &n
	} else if qs == nil {
		one := billing.QuantityOf(1)
		q = &one
	}
	feature := c.QueryParam("feature")
	if feature == "" {
		return billing.Errorf(billing.CodeUnknownFeature, "feature is required").With("param", "feature")
	}
	// The request's shape is checked as a debit's is.
	probe := billing.UsageRequest{Customer: "-", Feature: feature, Quantity: q, Quantities: qs}
	if err := probe.Validate(); err != nil {
		return err
	}
	out, err := s.ledger.Quote(c.Request().Context(), c.QueryParam("customer"), feature, q, qs, apiKey(c))
	if err != nil {
		return err
	}
	return writeJSON(c, http.StatusOK, out)
}
