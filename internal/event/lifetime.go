package event

import "time"

// KindProcessLifetime is derived from exec and exit: one event per program
// run that ended, with what ran and how it ended.
const KindProcessLifetime Kind = "process_lifetime"

// ProcessLifetime joins a process's last exec with its exit. The header is
// the exit's (pid, comm, container, ... at exit).
type ProcessLifetime struct {
	Header
	Filename        string    `json:"filename" doc:"program of the last exec, as passed to execve"`
	Args            []string  `json:"args" doc:"argv of the last exec"`
	ArgsTruncated   bool      `json:"args_truncated" doc:"argv was cut at its bound"`
	ExecTime        time.Time `json:"exec_time" doc:"time of the last exec"`
	Execs           int       `json:"execs" doc:"execs the process made while it was watched (sh -c 'exec x' makes 2)"`
	ExitCode        int       `json:"exit_code" doc:"exit status (0-255)"`
	Signal          int       `json:"signal" doc:"terminating signal number, 0 for a normal exit"`
	CoreDumped      bool      `json:"core_dumped" doc:"the process dumped core"`
	LifetimeSeconds float64   `json:"lifetime_seconds" doc:"seconds from process start (fork) to exit"`
	RunSeconds      float64   `json:"run_seconds" doc:"seconds from the last exec to exit: how long the program ran"`
}
