package kernel

// SetCPUList replaces the CPU list perf_event attach uses, so a test can
// name absent CPUs; it returns a function restoring the real one.
func SetCPUList(f func() ([]int, error)) (restore func()) {
	old := cpuList
	cpuList = f
	return func() { cpuList = old }
}
