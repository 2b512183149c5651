package server

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/dispatchkit/dispatch/internal/inspect"
	"github.com/dispatchkit/dispatch/internal/localapi"
	"github.com/dispatchkit/dispatch/internal/store"
)

// inspectPrefix is where the inspection API is served, beside
// DispatchService and with the same bearer key:
//
//	GET /dispatch.local.v1/calls?limit=N&all=1   recent calls (roots unless all), newest first
//	GET /dispatch.local.v1/calls/{id}?depth=N    one call, its attempts and its children
//	GET /dispatch.local.v1/calls/{id}/result?wait=30s
//	                                             the call's final outcome, waiting for it
//	POST /dispatch.local.v1/calls/{id}/cancel    cancels the call and its tree of children
//	GET /dispatch.local.v1/health                200 {"status":"ok"} while the server runs
//	                                             calls; 503 {"status":"unavailable","error":...}
//	                                             once its store cannot write, or while it stops;
//	                                             a replica adds "replica" (its name) and
//	                                             "partitions" (those it runs)
//
// The health route needs no key: it says only whether the server works,
// for scripts and CI jobs that wait for it.
//
// The first two answer JSON (the types of internal/inspect). The result
// route answers {"status":"STATUS_OK","result":{CallResult in protojson},
// "result_proto":"<base64 binary CallResult>"} once the call is final, or
// 202 {"status":"pending"} if wait (default 0: answer at once, at most
// 60s) passes first; 404 {"status":"unknown",...} for an unknown id.
// [FetchResult] is its client. The cancel route takes an optional JSON
// body {"reason":"..."} (who cancels, for the calls' error) and answers
// {"status":"cancelled","calls":N}, {"status":"done"} for a call already
// final (nothing changes), or 404 {"status":"unknown",...}; see
// [Server.Cancel]. This API is for the dispatch command, SDKs and people;
// it is not part of the Dispatch protocol.
const inspectPrefix = "/dispatch.local.v1/"

func (s *Server) inspectHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+inspectPrefix+"calls", func(w http.ResponseWriter, r *http.Request) {
		limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
		all := r.URL.Query().Get("all") != ""
		calls, err := inspect.List(r.Context(), s.store, store.ListOptions{Limit: limit, RootOnly: !all})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		writeJSON(w, calls)
	})
	mux.HandleFunc("GET "+inspectPrefix+"calls/{id}/result", s.serveResult)
	mux.HandleFunc("POST "+localapi.CancelRoute, s.serveCancel)
	mux.HandleFunc("GET "+inspectPrefix+"calls/{id}", func(w http.ResponseWriter, r *http.Request) {
		depth, err := strconv.Atoi(r.URL.Query().Get("depth"))
		if err != nil {
			depth = 3
		}
		c, err := inspect.Tree(r.Context(), s.store, r.PathValue("id"), depth)
		if errors.Is(err, store.ErrNotFound) {
			http.Error(w, "dispatch: no call "+strconv.Quote(r.PathValue("id")), http.StatusNotFound)
			return
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		writeJSON(w, c)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !authorized(r.Header, s.cfg.APIKey) {
			http.Error(w, errUnauthenticated.Error(), http.StatusUnauthorized)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// healthBody is the JSON of the health route.
type healthBody struct {
	Status string `json:"status"` // "ok" or "unavailable"
	Error  string `json:"error,omitempty"`
	// Replica and Partitions are a replica's name and the partitions it
	// runs (Config.Postgres).
	Replica    string `json:"replica,omitempty"`
	Partitions *[]int `json:"partitions,omitempty"`
}

func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request) {
	body := healthBody{Status: "ok"}
	if s.cl != nil {
		parts := s.cl.partitions()
		body.Replica, body.Partitions = s.cl.name, &parts
	}
	code := http.StatusOK
	if err := s.Health(); err != nil {
		body.Status, body.Error, code = "unavailable", err.Error(), http.StatusServiceUnavailable
	}
	writeJSONStatus(w, code, body)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
