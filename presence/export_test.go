package presence

// Kill stops the engine at once with no cleanup at all, as if the process
// died. A test hook.
func (e *Engine) Kill() { e.kill() }
