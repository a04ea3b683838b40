package qcos

// Bodies of the API, as the gateway sends them. Timestamps are ISO 8601 UTC
// strings ("2024-01-15T10:30:00Z"); a limit of -1 means unlimited.

// JobState is a job's state. A cancelled job is "failed" with the error
// "cancelled by the user".
type JobState string

// The states of a job.
const (
	StateQueued     JobState = "queued"
	StateProcessing JobState = "processing"
	StateCompleted  JobState = "completed"
	StateFailed     JobState = "failed"
)

// Counts maps measured bitstrings to occurrences (summing to the shots). Bit
// order is Qiskit's: the rightmost character is c[0]; several classical
// registers are separated by spaces, the last-declared first.
type Counts map[string]int

// Health is the answer of GET /. Degraded lists the sources that are down
// ("scheduler", "accounting", "rate_limiter"); it is empty when all answer.
type Health struct {
	Status         string   `json:"status"` // "healthy" or "degraded"
	Version        string   `json:"version"`
	QueueConnected bool     `json:"queue_connected"`
	Degraded       []string `json:"degraded,omitempty"`
}

// Circuit is one circuit of a batch: OpenQASM 2.0 source, shots (0: the
// gateway's default, 1024) and an optional custom job id.
type Circuit struct {
	QASM  string `json:"qasm"`
	Shots int    `json:"shots,omitempty"`
	JobID string `json:"job_id,omitempty"`
}

// Submission is the answer of POST /execute.
type Submission struct {
	JobID                string   `json:"job_id"`
	Status               JobState `json:"status"`
	Message              string   `json:"message"`
	EstimatedTimeSeconds int      `json:"estimated_time_seconds"`
}

// JobResult is a completed job's full result, as GET /status gives it.
type JobResult struct {
	Counts               Counts  `json:"counts"`
	NumQubits            int     `json:"num_qubits"`
	Shots                int     `json:"shots"`
	ExecutionTimeSeconds float64 `json:"execution_time_seconds"` // the simulator's own time
	Backend              string  `json:"backend"`
	Device               string  `json:"device"`
	Method               string  `json:"method,omitempty"`
}

// JobStatus is the answer of GET /status/{job_id} and DELETE /jobs/{job_id}.
type JobStatus struct {
	JobID       string     `json:"job_id"`
	Status      JobState   `json:"status"`
	Result      *JobResult `json:"result"` // nil until completed
	Error       *string    `json:"error"`  // why it failed; nil otherwise
	CreatedAt   string     `json:"created_at"`
	CompletedAt *string    `json:"completed_at"`
}

// Results is the answer of GET /results/{job_id}: Status "completed" with
// Counts, or "pending" with Message.
type Results struct {
	JobID   string `json:"job_id"`
	Status  string `json:"status"`
	Message string `json:"message,omitempty"`
	Result  *struct {
		Counts Counts `json:"counts"`
	} `json:"result,omitempty"`
}

// Completed reports whether the job completed (Counts then has its counts).
func (r *Results) Completed() bool { return r.Status == string(StateCompleted) && r.Result != nil }

// Counts is the completed job's counts, or nil while it is pending.
func (r *Results) Counts() Counts {
	if !r.Completed() {
		return nil
	}
	return r.Result.Counts
}

// JobSummary is one job of GET /jobs.
type JobSummary struct {
	JobID       string   `json:"job_id"`
	Status      JobState `json:"status"`
	NumQubits   int      `json:"num_qubits"`
	Shots       int      `json:"shots"`
	CreatedAt   string   `json:"created_at"`
	CompletedAt *string  `json:"completed_at"`
	Error       *string  `json:"error"`
}

// JobList is the answer of GET /jobs, newest first.
type JobList struct {
	Jobs   []JobSummary `json:"jobs"`
	Total  int          `json:"total"`
	Limit  int          `json:"limit"`
	Offset int          `json:"offset"`
}

// ListJobsOptions filters GET /jobs; zero values are left to the gateway
// (all states, limit 20, offset 0). Limit is 1-100.
type ListJobsOptions struct {
	Status JobState
	Limit  int
	Offset int
}

// User is the answer of GET /user/me.
type User struct {
	UserID        string `json:"user_id"`
	Email         string `json:"email"`
	Tier          string `json:"tier"`
	DailyJobLimit int    `json:"daily_job_limit"`
	MaxQubits     int    `json:"max_qubits"`
	MaxShots      int    `json:"max_shots"`
	JobsToday     int    `json:"jobs_today"`
	JobsTotal     int    `json:"jobs_total"`
}

// DailyUsage is the completed jobs of one UTC day ("2024-01-15").
type DailyUsage struct {
	Date string `json:"date"`
	Jobs int    `json:"jobs"`
}

// Usage is the answer of GET /user/usage: completed jobs of one UTC month.
type Usage struct {
	UserID           string       `json:"user_id"`
	Period           string       `json:"period"` // "2024-01"
	JobsExecuted     int          `json:"jobs_executed"`
	TotalShots       int64        `json:"total_shots"`
	TotalQubitsHours float64      `json:"total_qubits_hours"` // sum of num_qubits x execution hours
	DailyUsage       []DailyUsage `json:"daily_usage"`        // newest first, days without jobs left out
}

// Tier is one tier of GET /pricing; PriceMonthly is nil for "on request".
type Tier struct {
	Name          string `json:"name"`
	PriceMonthly  *int   `json:"price_monthly"`
	DailyJobLimit int    `json:"daily_job_limit"`
	MaxQubits     int    `json:"max_qubits"`
	MaxShots      int    `json:"max_shots"`
}

// Pricing is the answer of GET /pricing.
type Pricing struct {
	Tiers []Tier `json:"tiers"`
}

// BatchSubmission is the answer of POST /batches.
type BatchSubmission struct {
	BatchID string   `json:"batch_id"`
	JobIDs  []string `json:"job_ids"` // in the order of the circuits
	Count   int      `json:"count"`
	Status  JobState `json:"status"`
}

// BatchJob is one job of GET /batches/{batch_id}.
type BatchJob struct {
	JobID  string   `json:"job_id"`
	Status JobState `json:"status"`
	Error  *string  `json:"error"`
	Result *struct {
		Counts Counts `json:"counts"`
	} `json:"result"`
}

// BatchStatus is the answer of GET /batches/{batch_id}; Done once every job
// is completed or failed.
type BatchStatus struct {
	BatchID   string           `json:"batch_id"`
	CreatedAt string           `json:"created_at"`
	Count     int              `json:"count"`
	Counts    map[JobState]int `json:"counts"` // jobs per state
	Done      bool             `json:"done"`
	Jobs      []BatchJob       `json:"jobs"`
}
