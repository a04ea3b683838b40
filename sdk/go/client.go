// Package qcos is a client of the QCOS REST API, which runs OpenQASM 2.0
// circuits as batch jobs on HPC clusters.
//
//	client := qcos.NewClient() // QCOS_URL and QCOS_API_KEY from the environment
//	job, err := client.Execute(ctx, bell, &qcos.ExecuteOptions{Shots: 1000})
//	counts, err := client.WaitForResult(ctx, job.JobID) // ctx's deadline bounds the wait
//
// Every method answers the API's body, or an error: an *APIError for an
// error answer of the API (match its kind with errors.Is, e.g.
// errors.Is(err, qcos.ErrJobNotFound)), or the transport's error. Nothing is
// retried: a 429 carries RetryAfter for the caller to honour.
package qcos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// DefaultBaseURL is the API reference's base URL, used when neither
// WithBaseURL nor QCOS_URL gives one.
const DefaultBaseURL = "https://api.softquantus.com"

const (
	// longPoll is the longest single server-side wait; a longer one is
	// several (the gateway caps each at QCOS_RESULTS_MAX_WAIT, 300 s by default).
	longPoll = 120 * time.Second
	// requestTimeout bounds an ordinary request; a long poll gets its wait on top.
	requestTimeout = 30 * time.Second
)

// Client talks to one QCOS gateway. It is safe for concurrent use.
type Client struct {
	baseURL    string
	apiKey     string
	httpClient *http.Client
}

// Option configures a Client.
type Option func(*Client)

// WithBaseURL sets the gateway URL (default: QCOS_URL, else DefaultBaseURL).
func WithBaseURL(baseURL string) Option { return func(c *Client) { c.baseURL = baseURL } }

// WithAPIKey sets the API key (default: QCOS_API_KEY). Only Health and
// Pricing work without one.
func WithAPIKey(apiKey string) Option { return func(c *Client) { c.apiKey = apiKey } }

// WithHTTPClient sets the HTTP client (default: one without an overall
// timeout; each call is bounded by its context and a per-request timeout).
func WithHTTPClient(httpClient *http.Client) Option {
	return func(c *Client) { c.httpClient = httpClient }
}

// NewClient returns a client configured from the environment (QCOS_URL,
// QCOS_API_KEY), then by options.
func NewClient(options ...Option) *Client {
	c := &Client{baseURL: os.Getenv("QCOS_URL"), apiKey: os.Getenv("QCOS_API_KEY"), httpClient: &http.Client{}}
	if c.baseURL == "" {
		c.baseURL = DefaultBaseURL
	}
	for _, option := range options {
		option(c)
	}
	c.baseURL = strings.TrimRight(c.baseURL, "/")
	return c
}

// BaseURL is the gateway URL the client talks to.
func (c *Client) BaseURL() string { return c.baseURL }

// Health calls GET / (no key needed).
func (c *Client) Health(ctx context.Context) (*Health, error) {
	var out Health
	return &out, c.do(ctx, http.MethodGet, "/", nil, nil, 0, &out)
}

// ExecuteOptions are the optional fields of a submission: Shots (0: the
// gateway's default, 1024) and a custom JobID (1-64 characters of
// A-Z a-z 0-9 _ - ., starting with a letter or digit; resubmitting the same
// id and body answers the same job).
type ExecuteOptions struct {
	Shots int
	JobID string
}

// Execute submits one OpenQASM 2.0 circuit (POST /execute); options may be nil.
// Errors: ErrCircuitInvalid, ErrQuotaExceeded, ErrJobIDConflict, ...
func (c *Client) Execute(ctx context.Context, qasm string, options *ExecuteOptions) (*Submission, error) {
	body := Circuit{QASM: qasm}
	if options != nil {
		body.Shots, body.JobID = options.Shots, options.JobID
	}
	var out Submission
	return &out, c.do(ctx, http.MethodPost, "/execute", nil, body, 0, &out)
}

// ExecuteBatch submits several circuits at once (POST /batches); each is one job.
func (c *Client) ExecuteBatch(ctx context.Context, circuits []Circuit) (*BatchSubmission, error) {
	var out BatchSubmission
	body := struct {
		Circuits []Circuit `json:"circuits"`
	}{circuits}
	return &out, c.do(ctx, http.MethodPost, "/batches", nil, body, 0, &out)
}

// Batch is the state of a batch and its jobs (GET /batches/{batchID}).
// Errors: ErrBatchNotFound.
func (c *Client) Batch(ctx context.Context, batchID string) (*BatchStatus, error) {
	var out BatchStatus
	return &out, c.do(ctx, http.MethodGet, "/batches/"+url.PathEscape(batchID), nil, nil, 0, &out)
}

// Status is a job's state, its full result once completed, its error once
// failed (GET /status/{jobID}). Errors: ErrJobNotFound.
func (c *Client) Status(ctx context.Context, jobID string) (*JobStatus, error) {
	var out JobStatus
	return &out, c.do(ctx, http.MethodGet, "/status/"+url.PathEscape(jobID), nil, nil, 0, &out)
}

// Results asks once for a job's counts (GET /results/{jobID}). With wait > 0
// the gateway holds the request up to wait (whole seconds, capped by the
// gateway) until the job is final; with 0 it answers at once. A pending job
// answers Status "pending". Errors: ErrJobFailed (Detail says why), ErrJobNotFound.
func (c *Client) Results(ctx context.Context, jobID string, wait time.Duration) (*Results, error) {
	query := url.Values{}
	if wait > 0 {
		query.Set("wait", "true")
		query.Set("timeout", strconv.Itoa(int(wait/time.Second)))
	}
	var out Results
	return &out, c.do(ctx, http.MethodGet, "/results/"+url.PathEscape(jobID), query, nil, wait, &out)
}

// WaitForResult waits for a job's counts with the gateway's long poll (no
// client-side sleeping), until ctx is done: give ctx a deadline to bound the
// wait. Errors: ErrJobFailed when the job fails; ctx's error (wrapped) when
// it ends first; the job goes on.
func (c *Client) WaitForResult(ctx context.Context, jobID string) (Counts, error) {
	for {
		wait := pollFor(ctx)
		answer, err := c.Results(ctx, jobID, wait)
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("qcos: job %s not completed: %w", jobID, ctx.Err())
			}
			return nil, err
		}
		if answer.Completed() {
			return answer.Counts(), nil
		}
		if wait == 0 { // under a second left: no more long polls
			<-ctx.Done()
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("qcos: job %s not completed: %w", jobID, ctx.Err())
		}
	}
}

// WaitForBatch waits until every job of a batch is final and answers the
// batch's last state (jobs may have failed: see each job's Status and Error).
// onProgress, if not nil, sees every state fetched. Between looks at the
// batch it long-polls one unfinished job. ctx bounds the wait, as in
// WaitForResult. Errors: ErrBatchNotFound.
func (c *Client) WaitForBatch(ctx context.Context, batchID string, onProgress func(*BatchStatus)) (*BatchStatus, error) {
	for {
		batch, err := c.Batch(ctx, batchID)
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("qcos: batch %s not done: %w", batchID, ctx.Err())
			}
			return nil, err
		}
		if onProgress != nil {
			onProgress(batch)
		}
		if batch.Done {
			return batch, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("qcos: batch %s not done: %w", batchID, ctx.Err())
		}
		pending := ""
		for _, job := range batch.Jobs {
			if job.Status == StateQueued || job.Status == StateProcessing {
				pending = job.JobID
				break
			}
		}
		if pending == "" { // every job final: Done is only a moment behind
			return batch, nil
		}
		wait := pollFor(ctx)
		if _, err := c.Results(ctx, pending, wait); err != nil && !errors.Is(err, ErrJobFailed) && ctx.Err() == nil {
			return nil, err
		}
		if wait == 0 {
			<-ctx.Done()
		}
	}
}

// Cancel cancels a job (DELETE /jobs/{jobID}) and answers its status; a
// cancelled job is "failed" with the error "cancelled by the user", a
// finished one is answered unchanged. Errors: ErrJobNotFound.
func (c *Client) Cancel(ctx context.Context, jobID string) (*JobStatus, error) {
	var out JobStatus
	return &out, c.do(ctx, http.MethodDelete, "/jobs/"+url.PathEscape(jobID), nil, nil, 0, &out)
}

// Jobs lists the caller's jobs, newest first (GET /jobs); options may be nil.
func (c *Client) Jobs(ctx context.Context, options *ListJobsOptions) (*JobList, error) {
	query := url.Values{}
	if options != nil {
		if options.Status != "" {
			query.Set("status", string(options.Status))
		}
		if options.Limit != 0 {
			query.Set("limit", strconv.Itoa(options.Limit))
		}
		if options.Offset != 0 {
			query.Set("offset", strconv.Itoa(options.Offset))
		}
	}
	var out JobList
	return &out, c.do(ctx, http.MethodGet, "/jobs", query, nil, 0, &out)
}

// Me describes the caller: tier, limits, job counts (GET /user/me).
func (c *Client) Me(ctx context.Context) (*User, error) {
	var out User
	return &out, c.do(ctx, http.MethodGet, "/user/me", nil, nil, 0, &out)
}

// Usage counts the caller's completed jobs of period ("YYYY-MM", UTC; ""
// for the current month) (GET /user/usage).
func (c *Client) Usage(ctx context.Context, period string) (*Usage, error) {
	query := url.Values{}
	if period != "" {
		query.Set("period", period)
	}
	var out Usage
	return &out, c.do(ctx, http.MethodGet, "/user/usage", query, nil, 0, &out)
}

// Pricing lists the tiers (GET /pricing, no key needed).
func (c *Client) Pricing(ctx context.Context) (*Pricing, error) {
	var out Pricing
	return &out, c.do(ctx, http.MethodGet, "/pricing", nil, nil, 0, &out)
}

// pollFor is how long the next long poll may ask the gateway to wait: up to
// longPoll, and a second short of ctx's deadline so the answer arrives in time.
func pollFor(ctx context.Context) time.Duration {
	deadline, ok := ctx.Deadline()
	if !ok {
		return longPoll
	}
	remaining := time.Until(deadline) - time.Second
	if remaining > longPoll {
		return longPoll
	}
	if remaining < time.Second {
		return 0
	}
	return remaining
}

// do sends one request and decodes the JSON answer into out; wait is the
// server-side wait the request asks for, added to its timeout.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, body any, wait time.Duration, out any) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout+wait)
	defer cancel()
	target := c.baseURL + path
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	var payload io.Reader
	if body != nil {
		encoded, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("qcos: encoding the %s %s body: %w", method, path, err)
		}
		payload = bytes.NewReader(encoded)
	}
	request, err := http.NewRequestWithContext(ctx, method, target, payload)
	if err != nil {
		return fmt.Errorf("qcos: %s %s: %w", method, path, err)
	}
	request.Header.Set("Accept", "application/json")
	if body != nil {
		request.Header.Set("Content-Type", "application/json")
	}
	if c.apiKey != "" {
		request.Header.Set("X-API-Key", c.apiKey)
	}
	response, err := c.httpClient.Do(request)
	if err != nil {
		return fmt.Errorf("qcos: %s %s: %w", method, path, err)
	}
	defer response.Body.Close()
	raw, err := io.ReadAll(response.Body)
	if err != nil {
		return fmt.Errorf("qcos: %s %s: reading the answer: %w", method, path, err)
	}
	if response.StatusCode >= 300 {
		var answer struct {
			Detail    string `json:"detail"`
			ErrorCode string `json:"error_code"`
			RequestID string `json:"request_id"`
		}
		if json.Unmarshal(raw, &answer) != nil || answer.ErrorCode == "" {
			// Not the API's JSON: an answer of a proxy, or of gunicorn itself.
			answer.ErrorCode = fmt.Sprintf("HTTP_%d", response.StatusCode)
			answer.Detail = strings.TrimSpace(string(raw))
			if len(answer.Detail) > 200 {
				answer.Detail = answer.Detail[:200]
			}
			if answer.Detail == "" {
				answer.Detail = response.Status
			}
			answer.RequestID = response.Header.Get("X-Request-ID")
		}
		return newAPIError(response.StatusCode, answer.ErrorCode, answer.Detail, answer.RequestID,
			response.Header.Get("Retry-After"))
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("qcos: %s %s: the answer is not the expected JSON: %w", method, path, err)
	}
	return nil
}
