package qcos

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"time"
)

// ErrorCode is the API's error_code: a stable name of what went wrong.
type ErrorCode string

// The error codes of the API (the gateway's README lists when each is used).
const (
	CodeAuthRequired       ErrorCode = "AUTH_REQUIRED"
	CodeAuthInvalid        ErrorCode = "AUTH_INVALID"
	CodeAdminRequired      ErrorCode = "ADMIN_REQUIRED"
	CodeRateLimited        ErrorCode = "RATE_LIMITED"
	CodeQuotaExceeded      ErrorCode = "QUOTA_EXCEEDED"
	CodeInvalidRequest     ErrorCode = "INVALID_REQUEST"
	CodeCircuitInvalid     ErrorCode = "CIRCUIT_INVALID"
	CodeJobNotFound        ErrorCode = "JOB_NOT_FOUND"
	CodeBatchNotFound      ErrorCode = "BATCH_NOT_FOUND"
	CodeJobIDConflict      ErrorCode = "JOB_ID_CONFLICT"
	CodeJobFailed          ErrorCode = "JOB_FAILED"
	CodeNotFound           ErrorCode = "NOT_FOUND"
	CodeMethodNotAllowed   ErrorCode = "METHOD_NOT_ALLOWED"
	CodePayloadTooLarge    ErrorCode = "PAYLOAD_TOO_LARGE"
	CodeUnsupportedMedia   ErrorCode = "UNSUPPORTED_MEDIA_TYPE"
	CodeServiceUnavailable ErrorCode = "SERVICE_UNAVAILABLE"
	CodeInternalError      ErrorCode = "INTERNAL_ERROR"
)

// Kinds of API errors, for errors.Is. Each matches the APIErrors whose Code
// is one of its codes:
//
//	if errors.Is(err, qcos.ErrRateLimited) { ... }
//	var apiErr *qcos.APIError
//	if errors.As(err, &apiErr) { time.Sleep(apiErr.RetryAfter) }
var (
	ErrAuthentication     = errors.New("qcos: authentication failed") // AUTH_REQUIRED, AUTH_INVALID (401)
	ErrPermissionDenied   = errors.New("qcos: permission denied")     // ADMIN_REQUIRED (403)
	ErrQuotaExceeded      = errors.New("qcos: quota exceeded")        // QUOTA_EXCEEDED: 403 qubits/shots, 429 daily jobs
	ErrRateLimited        = errors.New("qcos: rate limited")          // RATE_LIMITED (429)
	ErrInvalidRequest     = errors.New("qcos: invalid request")       // INVALID_REQUEST (400)
	ErrCircuitInvalid     = errors.New("qcos: invalid circuit")       // CIRCUIT_INVALID (400)
	ErrNotFound           = errors.New("qcos: not found")             // JOB_NOT_FOUND, BATCH_NOT_FOUND (404)
	ErrJobNotFound        = errors.New("qcos: job not found")         // JOB_NOT_FOUND (404)
	ErrBatchNotFound      = errors.New("qcos: batch not found")       // BATCH_NOT_FOUND (404)
	ErrJobIDConflict      = errors.New("qcos: job id already used")   // JOB_ID_CONFLICT (409)
	ErrJobFailed          = errors.New("qcos: job failed")            // JOB_FAILED (409)
	ErrServiceUnavailable = errors.New("qcos: service unavailable")   // SERVICE_UNAVAILABLE (503)
)

var kinds = map[error][]ErrorCode{
	ErrAuthentication:     {CodeAuthRequired, CodeAuthInvalid},
	ErrPermissionDenied:   {CodeAdminRequired},
	ErrQuotaExceeded:      {CodeQuotaExceeded},
	ErrRateLimited:        {CodeRateLimited},
	ErrInvalidRequest:     {CodeInvalidRequest},
	ErrCircuitInvalid:     {CodeCircuitInvalid},
	ErrNotFound:           {CodeJobNotFound, CodeBatchNotFound},
	ErrJobNotFound:        {CodeJobNotFound},
	ErrBatchNotFound:      {CodeBatchNotFound},
	ErrJobIDConflict:      {CodeJobIDConflict},
	ErrJobFailed:          {CodeJobFailed},
	ErrServiceUnavailable: {CodeServiceUnavailable},
}

// APIError is an error answer of the API:
// {"detail": "...", "error_code": "...", "request_id": "req_..."}.
type APIError struct {
	StatusCode int       // HTTP status, e.g. 404
	Code       ErrorCode // error_code; "HTTP_<status>" for an answer that was not the API's JSON
	Detail     string    // human-readable reason (for JOB_FAILED: why the job failed)
	RequestID  string    // the gateway's request id (also in its log), or ""
	// RetryAfter is the Retry-After header (429 RATE_LIMITED and QUOTA_EXCEEDED,
	// 503); 0 when absent.
	RetryAfter time.Duration
	// Line and Column (1-based) locate a CIRCUIT_INVALID error in the
	// OpenQASM source; 0 when the gateway names none.
	Line, Column int
}

func (e *APIError) Error() string {
	message := fmt.Sprintf("qcos: %s (HTTP %d): %s", e.Code, e.StatusCode, e.Detail)
	if e.RequestID != "" {
		message += " [" + e.RequestID + "]"
	}
	return message
}

// Is reports whether target is one of the kinds (ErrJobNotFound, ...) that
// e's code belongs to.
func (e *APIError) Is(target error) bool {
	for _, code := range kinds[target] {
		if e.Code == code {
			return true
		}
	}
	return false
}

var circuitPosition = regexp.MustCompile(`\bline (\d+)(?:, column (\d+))?`)

func newAPIError(status int, code, detail, requestID, retryAfter string) *APIError {
	e := &APIError{StatusCode: status, Code: ErrorCode(code), Detail: detail, RequestID: requestID}
	if seconds, err := strconv.Atoi(retryAfter); err == nil && seconds >= 0 {
		e.RetryAfter = time.Duration(seconds) * time.Second
	} else if when, err := time.Parse(time.RFC1123, retryAfter); err == nil && time.Until(when) > 0 {
		e.RetryAfter = time.Until(when).Round(time.Second)
	}
	if e.Code == CodeCircuitInvalid {
		if match := circuitPosition.FindStringSubmatch(detail); match != nil {
			e.Line, _ = strconv.Atoi(match[1])
			e.Column, _ = strconv.Atoi(match[2])
		}
	}
	return e
}
