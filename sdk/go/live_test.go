package qcos_test

// The client against a live gateway: QCOS_URL and QCOS_API_KEY (make
// sdk-test sets both). Without them the tests skip, except under CI=true,
// where they fail.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	qcos "github.com/softquantus/qcos-go"
)

const (
	bell = `OPENQASM 2.0; include "qelib1.inc"; qreg q[2]; creg c[2]; h q[0]; cx q[0],q[1]; measure q -> c;`
	ghz3 = `OPENQASM 2.0; include "qelib1.inc"; qreg q[3]; creg c[3]; h q[0]; cx q[0],q[1]; cx q[1],q[2]; measure q -> c;`
)

// slow runs for many seconds (a state vector of 20 qubits, 41,000 gates, not
// Clifford); the tests cancel it long before it ends.
var slow = `OPENQASM 2.0; include "qelib1.inc"; qreg q[20]; creg c[20]; ` +
	strings.Repeat("h q; t q; cx q[0],q[19]; ", 1000) + "measure q -> c;"

func liveClient(t *testing.T, options ...qcos.Option) *qcos.Client {
	t.Helper()
	if os.Getenv("QCOS_URL") == "" || os.Getenv("QCOS_API_KEY") == "" {
		if ci := strings.ToLower(os.Getenv("CI")); ci == "1" || ci == "true" || ci == "yes" {
			t.Fatal("QCOS_URL and QCOS_API_KEY must name a live gateway (CI=true: real components are required)")
		}
		t.Skip("no live gateway: set QCOS_URL and QCOS_API_KEY (make sdk-test does)")
	}
	return qcos.NewClient(options...)
}

func timeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func unique(prefix string) string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return prefix + "-" + hex.EncodeToString(b)
}

func total(counts qcos.Counts) int {
	sum := 0
	for _, n := range counts {
		sum += n
	}
	return sum
}

func apiError(t *testing.T, err error) *qcos.APIError {
	t.Helper()
	var apiErr *qcos.APIError
	if !errors.As(err, &apiErr) {
		t.Fatalf("want an *APIError, got %T: %v", err, err)
	}
	return apiErr
}

// batchEndpoint fails the test with a message that says so when the gateway has no /batches.
func batchEndpoint(t *testing.T, client *qcos.Client, err error) {
	t.Helper()
	var apiErr *qcos.APIError
	if errors.As(err, &apiErr) && apiErr.Code == qcos.CodeNotFound {
		t.Fatalf("the gateway at %s has no /batches endpoint (404 NOT_FOUND): %v", client.BaseURL(), err)
	}
}

func TestHealthAndPricingNeedNoKey(t *testing.T) {
	client := liveClient(t, qcos.WithAPIKey(""))
	ctx := timeout(t, 30*time.Second)
	health, err := client.Health(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if health.Status != "healthy" && health.Status != "degraded" || health.Version == "" || !health.QueueConnected {
		t.Errorf("health: %+v", health)
	}
	pricing, err := client.Pricing(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tier := range pricing.Tiers {
		names = append(names, tier.Name)
	}
	if strings.Join(names, ",") != "free,pro,enterprise" || *pricing.Tiers[0].PriceMonthly != 0 {
		t.Errorf("pricing: %+v", pricing)
	}
}

func TestMe(t *testing.T) {
	client := liveClient(t)
	me, err := client.Me(timeout(t, 30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if me.Tier != "enterprise" || !strings.Contains(me.Email, "@") || me.MaxQubits <= 0 || me.JobsTotal < me.JobsToday {
		t.Errorf("me: %+v", me)
	}
}

func TestBellFlow(t *testing.T) {
	client := liveClient(t)
	ctx := timeout(t, 180*time.Second)
	job, err := client.Execute(ctx, bell, &qcos.ExecuteOptions{Shots: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if job.Status != qcos.StateQueued || job.JobID == "" {
		t.Fatalf("submission: %+v", job)
	}
	// The local executor needs seconds to start the simulator: the job is not done yet.
	early, err := client.Results(ctx, job.JobID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if early.Status != "pending" || early.Message != "Job not yet completed" || early.Counts() != nil {
		t.Errorf("early results: %+v", early)
	}
	counts, err := client.WaitForResult(ctx, job.JobID)
	if err != nil {
		t.Fatal(err)
	}
	if total(counts) != 1000 || len(counts) > 2 || counts["00"]+counts["11"] != 1000 {
		t.Errorf("counts: %v", counts)
	}
	status, err := client.Status(ctx, job.JobID)
	if err != nil {
		t.Fatal(err)
	}
	if status.Status != qcos.StateCompleted || status.Result.Shots != 1000 || status.Result.NumQubits != 2 ||
		status.Error != nil || status.CompletedAt == nil || total(status.Result.Counts) != 1000 {
		t.Errorf("status: %+v", status)
	}
}

func TestWaitForResultEndsWithTheContext(t *testing.T) {
	client := liveClient(t)
	job, err := client.Execute(timeout(t, 30*time.Second), slow, &qcos.ExecuteOptions{Shots: 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = client.Cancel(context.Background(), job.JobID) })
	started := time.Now()
	_, err = client.WaitForResult(timeout(t, 2500*time.Millisecond), job.JobID)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want a deadline error, got %v", err)
	}
	if elapsed := time.Since(started); elapsed > 4*time.Second {
		t.Errorf("the wait outlived its deadline by %v", elapsed-2500*time.Millisecond)
	}
}

func TestCustomJobIDIsIdempotentAndConflicts(t *testing.T) {
	client := liveClient(t)
	ctx := timeout(t, 30*time.Second)
	id := unique("go-idem")
	for i := 0; i < 2; i++ {
		job, err := client.Execute(ctx, bell, &qcos.ExecuteOptions{Shots: 64, JobID: id})
		if err != nil || job.JobID != id {
			t.Fatalf("submission %d: %+v, %v", i, job, err)
		}
	}
	_, err := client.Execute(ctx, bell, &qcos.ExecuteOptions{Shots: 65, JobID: id})
	if !errors.Is(err, qcos.ErrJobIDConflict) {
		t.Fatalf("want ErrJobIDConflict, got %v", err)
	}
	if e := apiError(t, err); e.StatusCode != 409 || !strings.HasPrefix(e.RequestID, "req_") {
		t.Errorf("conflict: %+v", e)
	}
}

func TestInvalidCircuitNamesLineAndColumn(t *testing.T) {
	client := liveClient(t)
	_, err := client.Execute(timeout(t, 30*time.Second), "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[1];\nfoo q[0];\n", nil)
	if !errors.Is(err, qcos.ErrCircuitInvalid) {
		t.Fatalf("want ErrCircuitInvalid, got %v", err)
	}
	if e := apiError(t, err); e.StatusCode != 400 || e.Line != 4 || e.Column != 1 || !strings.Contains(e.Detail, "foo") {
		t.Errorf("circuit error: %+v", e)
	}
}

func TestShotsOutOfRange(t *testing.T) {
	client := liveClient(t)
	ctx := timeout(t, 30*time.Second)
	me, err := client.Me(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, err = client.Execute(ctx, bell, &qcos.ExecuteOptions{Shots: me.MaxShots + 1})
	if !errors.Is(err, qcos.ErrQuotaExceeded) {
		t.Fatalf("want ErrQuotaExceeded, got %v", err)
	}
	if e := apiError(t, err); e.StatusCode != 403 || e.RetryAfter != 0 {
		t.Errorf("quota error: %+v", e)
	}
	_, err = client.Execute(ctx, bell, &qcos.ExecuteOptions{Shots: -1})
	if !errors.Is(err, qcos.ErrInvalidRequest) {
		t.Fatalf("want ErrInvalidRequest, got %v", err)
	}
}

func TestKeys(t *testing.T) {
	ctx := timeout(t, 30*time.Second)
	_, err := liveClient(t, qcos.WithAPIKey("")).Me(ctx)
	if !errors.Is(err, qcos.ErrAuthentication) || apiError(t, err).Code != qcos.CodeAuthRequired {
		t.Errorf("no key: %v", err)
	}
	_, err = liveClient(t, qcos.WithAPIKey("qcos_not-a-key")).Me(ctx)
	if !errors.Is(err, qcos.ErrAuthentication) || apiError(t, err).Code != qcos.CodeAuthInvalid || apiError(t, err).StatusCode != 401 {
		t.Errorf("wrong key: %v", err)
	}
}

func TestUnknownJob(t *testing.T) {
	client := liveClient(t)
	ctx := timeout(t, 30*time.Second)
	id := unique("go-missing")
	_, statusErr := client.Status(ctx, id)
	_, resultsErr := client.Results(ctx, id, 0)
	_, cancelErr := client.Cancel(ctx, id)
	for _, err := range []error{statusErr, resultsErr, cancelErr} {
		if !errors.Is(err, qcos.ErrJobNotFound) || !errors.Is(err, qcos.ErrNotFound) || errors.Is(err, qcos.ErrBatchNotFound) {
			t.Errorf("want ErrJobNotFound, got %v", err)
		}
	}
}

func TestCancelledJobFails(t *testing.T) {
	client := liveClient(t)
	ctx := timeout(t, 60*time.Second)
	job, err := client.Execute(ctx, slow, &qcos.ExecuteOptions{Shots: 10})
	if err != nil {
		t.Fatal(err)
	}
	cancelled, err := client.Cancel(ctx, job.JobID)
	if err != nil {
		t.Fatal(err)
	}
	if cancelled.Status != qcos.StateFailed || cancelled.Error == nil || *cancelled.Error != "cancelled by the user" {
		t.Fatalf("cancelled: %+v", cancelled)
	}
	again, err := client.Cancel(ctx, job.JobID)
	if err != nil || again.Status != qcos.StateFailed || *again.CompletedAt != *cancelled.CompletedAt {
		t.Errorf("second cancel: %+v, %v", again, err)
	}
	_, err = client.WaitForResult(ctx, job.JobID)
	if !errors.Is(err, qcos.ErrJobFailed) || !strings.Contains(apiError(t, err).Detail, "cancelled by the user") {
		t.Errorf("want ErrJobFailed with the reason, got %v", err)
	}
}

func TestJobsNewestFirstAndFiltered(t *testing.T) {
	client := liveClient(t)
	ctx := timeout(t, 60*time.Second)
	failed, err := client.Execute(ctx, slow, &qcos.ExecuteOptions{Shots: 10})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Cancel(ctx, failed.JobID); err != nil {
		t.Fatal(err)
	}
	newest, err := client.Execute(ctx, bell, &qcos.ExecuteOptions{Shots: 10, JobID: unique("go-list")})
	if err != nil {
		t.Fatal(err)
	}
	page, err := client.Jobs(ctx, &qcos.ListJobsOptions{Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	if page.Limit != 2 || len(page.Jobs) != 2 || page.Total < 2 || page.Jobs[0].JobID != newest.JobID ||
		page.Jobs[1].JobID != failed.JobID {
		t.Errorf("page: %+v", page)
	}
	onlyFailed, err := client.Jobs(ctx, &qcos.ListJobsOptions{Status: qcos.StateFailed, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, job := range onlyFailed.Jobs {
		found = found || job.JobID == failed.JobID
		if job.Status != qcos.StateFailed {
			t.Errorf("status filter let through %+v", job)
		}
	}
	if !found {
		t.Errorf("the cancelled job %s is not among the failed ones", failed.JobID)
	}
	if _, err := client.Jobs(ctx, &qcos.ListJobsOptions{Limit: 101}); !errors.Is(err, qcos.ErrInvalidRequest) {
		t.Errorf("limit 101: want ErrInvalidRequest, got %v", err)
	}
}

func TestUsage(t *testing.T) {
	client := liveClient(t)
	ctx := timeout(t, 180*time.Second)
	job, err := client.Execute(ctx, bell, &qcos.ExecuteOptions{Shots: 10})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.WaitForResult(ctx, job.JobID); err != nil {
		t.Fatal(err)
	}
	now, err := client.Usage(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^\d{4}-\d{2}$`).MatchString(now.Period) || now.JobsExecuted < 1 || now.TotalShots < 10 ||
		len(now.DailyUsage) == 0 || now.DailyUsage[0].Jobs < 1 {
		t.Errorf("usage now: %+v", now)
	}
	old, err := client.Usage(ctx, "2024-01")
	if err != nil {
		t.Fatal(err)
	}
	if old.Period != "2024-01" || old.JobsExecuted != 0 || len(old.DailyUsage) != 0 {
		t.Errorf("usage 2024-01: %+v", old)
	}
	if _, err := client.Usage(ctx, "2024-13"); !errors.Is(err, qcos.ErrInvalidRequest) {
		t.Errorf("period 2024-13: want ErrInvalidRequest, got %v", err)
	}
}

func TestBatch(t *testing.T) {
	client := liveClient(t)
	ctx := timeout(t, 300*time.Second)
	customID := unique("go-batch")
	submitted, err := client.ExecuteBatch(ctx, []qcos.Circuit{{QASM: bell}, {QASM: ghz3, Shots: 300, JobID: customID}})
	batchEndpoint(t, client, err)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^batch_[0-9a-f]+$`).MatchString(submitted.BatchID) || submitted.Count != 2 ||
		len(submitted.JobIDs) != 2 || submitted.JobIDs[1] != customID {
		t.Fatalf("submission: %+v", submitted)
	}
	var seen []*qcos.BatchStatus
	batch, err := client.WaitForBatch(ctx, submitted.BatchID, func(b *qcos.BatchStatus) { seen = append(seen, b) })
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) == 0 || seen[len(seen)-1] != batch {
		t.Errorf("progress saw %d states, the last not the answer", len(seen))
	}
	if !batch.Done || batch.Counts[qcos.StateCompleted] != 2 || batch.Counts[qcos.StateFailed] != 0 || len(batch.Jobs) != 2 {
		t.Fatalf("batch: %+v", batch)
	}
	byID := map[string]qcos.BatchJob{}
	for _, job := range batch.Jobs {
		byID[job.JobID] = job
	}
	if total(byID[submitted.JobIDs[0]].Result.Counts) != 1024 {
		t.Errorf("the Bell job's counts: %+v", byID[submitted.JobIDs[0]].Result)
	}
	var keys []string
	for key := range byID[customID].Result.Counts {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	if strings.Join(keys, ",") != "000,111" {
		t.Errorf("the GHZ job's outcomes: %v", keys)
	}
	// Each job of a batch is a job like any other.
	if status, err := client.Status(ctx, customID); err != nil || status.Status != qcos.StateCompleted {
		t.Errorf("status of a batch job: %+v, %v", status, err)
	}
}

func TestUnknownBatch(t *testing.T) {
	client := liveClient(t)
	_, err := client.Batch(timeout(t, 30*time.Second), "batch_0123456789abcdef")
	batchEndpoint(t, client, err)
	if !errors.Is(err, qcos.ErrBatchNotFound) || !errors.Is(err, qcos.ErrNotFound) || errors.Is(err, qcos.ErrJobNotFound) {
		t.Errorf("want ErrBatchNotFound, got %v", err)
	}
}
