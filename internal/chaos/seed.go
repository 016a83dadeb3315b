package chaos

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// seed creates group and its members through the admin REST API of node
// n, a few calls at a time; calls that fail are retried, and an "already
// exists" (made by an earlier try) counts as done.
func seed(ctx context.Context, api *API, n *Node, group string, users []string) error {
	if err := create(ctx, api, "POST", n.URL+"/v1/groups", map[string]any{"id": group, "name": "Chaos"}); err != nil {
		return err
	}
	sem := make(chan struct{}, 8)
	errs := make(chan error, len(users))
	var wg sync.WaitGroup
	for _, u := range users {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			err := create(ctx, api, "POST", n.URL+"/v1/users", map[string]any{"id": u, "username": "user-" + u})
			if err == nil {
				err = create(ctx, api, "PUT", n.URL+"/v1/groups/"+group+"/members/"+u, nil)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func create(ctx context.Context, api *API, method, url string, body any) error {
	var last string
	for try := 0; try < 10; try++ {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		r, err := api.do(cctx, method, url, body)
		cancel()
		switch {
		case err == nil && (r.OK() || r.Status == http.StatusConflict && strings.Contains(string(r.Body), "already exists")):
			// Another conflict (a write that lost to others too long)
			// did nothing: it is tried again.
			return nil
		case err != nil:
			last = err.Error()
		default:
			last = fmt.Sprintf("%s %s", r, r.Body)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	return fmt.Errorf("chaos: %s %s: %s", method, url, last)
}
