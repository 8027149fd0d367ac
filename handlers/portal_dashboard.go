package handlers

import (
	"net/http"

	"github.com/labstack/echo/v4"
	"github.com/tally-billing/tally/views"
)

// GET /portal: the overview.
func (s *Server) dashboard(c echo.Context) error {
	sh, err := s.shell(c, "Overview", "overview")
	if err != nil {
		return err
	}
	return render(c, http.StatusOK, views.Dashboard(sh))
}
