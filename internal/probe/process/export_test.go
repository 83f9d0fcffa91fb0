package process

// ExitHooks lets the external kernel tests force the pre-6.16 exit fallback.
var ExitHooks = &exitHooks
