package handlers

import (
	_ "embed"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"
	"github.com/tally-billing/tally/billing"
)

func (s *Server) getPriceBook(c echo.Context) error {
	pb, err := s.prices.CurrentPriceBook(c.Request().Context())
	if err != nil {
		return err
	}
	if pb == nil {
		return billing.Errorf(billing.CodeNotFound, "No price book has been published yet.")
	}
	return writeJSON(c, http.StatusOK, priceBookView(*pb))
}

type priceBookJSON struct {
	Object string `json:"object"`
	billing.PriceBook
}

func priceBookView(pb billing.PriceBook) priceBookJSON {
	if pb.Packs == nil {
		pb.Packs = []billing.CreditPack{}
	}
	return priceBookJSON{Object: "price_book", PriceBook: pb}
}

func (s *Server) listPriceBooks(c echo.Context) error {
	pbs, err := s.prices.ListPriceBooks(c.Request().Context())
	if err != nil {
		return err
	}
	views := make([]priceBookJSON, len(pbs))
	for i, pb := range pbs {
		views[i] = priceBookView(pb)
	}
	return writeJSON(c, http.StatusOK, newList(views, ""))
}

func (s *Server) getPriceBookVersion(c echo.Context) error {
	v, err := strconv.ParseInt(c.Param("version"), 10, 64)
	if err != nil || v < 1 {
		return billing.Errorf(billing.CodeNotFound, "No price book version %q.", c.Param("version"))
	}
	pb, err := s.prices.PriceBookVersion(c.Request().Context(), v)
	if err != nil {
		return err
	}
	return writeJSON(c, http.StatusOK, priceBookView(*pb))
}

// POST /api/v1/price-books publishes a new version (201), or answers 200 with
// the current one when nothing changed.
func (s *Server) publishPriceBook(c echo.Context) error {
	var pb billing.PriceBook
	if err := DecodeJSON(c.Request().Body, &pb); err != nil {
		return err
	}
	out, changed, err := s.prices.PublishPriceBook(c.Request().Context(), pb)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if changed {
		status = http.StatusCreated
	}
	return writeJSON(c, status, priceBookView(out))
}

//go:embed openapi.json
var openAPIDoc []byte

// GET /api/v1/openapi.json serves the API's OpenAPI 3.1 description.
func (s *Server) openAPI(c echo.Context) error {
	return c.Blob(http.StatusOK, "application/json", openAPIDoc)
}
