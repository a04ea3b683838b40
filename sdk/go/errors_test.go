package qcos_test

// How answers become errors and requests are formed, against a stand-in
// server (no gateway needed): the answers a live gateway cannot be made to
// give on demand.

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	qcos "github.com/softquantus/qcos-go"
)

type recorded struct {
	method, uri, key, contentType string
	body                          map[string]any
}

// standIn answers every request with status, headers and body; it records the requests.
func standIn(t *testing.T, status int, headers map[string]string, body string) (*qcos.Client, *[]recorded) {
	var requests []recorded
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		entry := recorded{method: r.Method, uri: r.RequestURI, key: r.Header.Get("X-API-Key"),
			contentType: r.Header.Get("Content-Type")}
		_ = json.Unmarshal(raw, &entry.body)
		requests = append(requests, entry)
		for name, value := range headers {
			w.Header().Set(name, value)
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(server.Close)
	return qcos.NewClient(qcos.WithBaseURL(server.URL+"/"), qcos.WithAPIKey("qcos_k")), &requests
}

func TestRateLimitedCarriesRetryAfter(t *testing.T) {
	client, _ := standIn(t, 429, map[string]string{"Retry-After": "17"},
		`{"detail": "Rate limit of 10 per 1 minute exceeded", "error_code": "RATE_LIMITED", "request_id": "req_1"}`)
	_, err := client.Me(context.Background())
	var apiErr *qcos.APIError
	if !errors.Is(err, qcos.ErrRateLimited) || !errors.As(err, &apiErr) {
		t.Fatalf("want ErrRateLimited, got %v", err)
	}
	if apiErr.RetryAfter != 17*time.Second || apiErr.RequestID != "req_1" || apiErr.StatusCode != 429 {
		t.Errorf("error: %+v", apiErr)
	}
}

func TestDailyQuotaIsAQuotaErrorWithRetryAfter(t *testing.T) {
	client, _ := standIn(t, 429, map[string]string{"Retry-After": "3600"},
		`{"detail": "Daily job limit of 10 reached", "error_code": "QUOTA_EXCEEDED", "request_id": "req_2"}`)
	_, err := client.Execute(context.Background(), "OPENQASM 2.0;", nil)
	var apiErr *qcos.APIError
	if !errors.Is(err, qcos.ErrQuotaExceeded) || errors.Is(err, qcos.ErrRateLimited) || !errors.As(err, &apiErr) ||
		apiErr.RetryAfter != time.Hour {
		t.Fatalf("want ErrQuotaExceeded with RetryAfter 1h, got %v", err)
	}
}

func TestNonJSONErrorPage(t *testing.T) {
	client, _ := standIn(t, 414, nil, "<h1>Request Line is too large</h1>")
	_, err := client.Status(context.Background(), "x")
	var apiErr *qcos.APIError
	if !errors.As(err, &apiErr) || apiErr.Code != "HTTP_414" || apiErr.Detail != "<h1>Request Line is too large</h1>" {
		t.Fatalf("got %v", err)
	}
}

func TestRequestsCarryKeyBodyAndQuery(t *testing.T) {
	client, requests := standIn(t, 200, nil, `{}`)
	ctx := context.Background()
	_, _ = client.Execute(ctx, "QASM", &qcos.ExecuteOptions{Shots: 5})
	_, _ = client.Status(ctx, "a/b?c")
	_, _ = client.Results(ctx, "j1", 7*time.Second)
	_, _ = client.Jobs(ctx, &qcos.ListJobsOptions{Status: qcos.StateFailed, Limit: 3})
	_, _ = client.Usage(ctx, "")
	got := *requests
	if len(got) != 5 {
		t.Fatalf("%d requests", len(got))
	}
	if got[0].method != "POST" || got[0].key != "qcos_k" || got[0].contentType != "application/json" ||
		len(got[0].body) != 2 || got[0].body["qasm"] != "QASM" || got[0].body["shots"] != float64(5) {
		t.Errorf("execute: %+v", got[0])
	}
	for i, want := range []string{"/status/a%2Fb%3Fc", "/results/j1?timeout=7&wait=true", "/jobs?limit=3&status=failed", "/user/usage"} {
		if got[i+1].uri != want {
			t.Errorf("request %d: %s, want %s", i+1, got[i+1].uri, want)
		}
	}
}

func TestHealthListsTheSourcesThatAreDown(t *testing.T) {
	client, _ := standIn(t, 200, nil,
		`{"status": "degraded", "version": "1.0.0", "queue_connected": true, "degraded": ["accounting", "rate_limiter"]}`)
	health, err := client.Health(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if health.Status != "degraded" || !health.QueueConnected || len(health.Degraded) != 2 ||
		health.Degraded[0] != "accounting" || health.Degraded[1] != "rate_limiter" {
		t.Errorf("health: %+v", health)
	}
	healthy, _ := standIn(t, 200, nil, `{"status": "healthy", "version": "1.0.0", "queue_connected": true}`)
	if health, err = healthy.Health(context.Background()); err != nil || health.Degraded != nil {
		t.Errorf("healthy: %+v, %v", health, err)
	}
}

func TestUnreachableGatewayIsNoAPIError(t *testing.T) {
	client := qcos.NewClient(qcos.WithBaseURL("http://127.0.0.1:9"))
	_, err := client.Health(context.Background())
	var apiErr *qcos.APIError
	if err == nil || errors.As(err, &apiErr) {
		t.Fatalf("want a transport error, got %v", err)
	}
}
