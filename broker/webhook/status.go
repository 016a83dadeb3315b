package webhook

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"
)

// NodeStatus is one node's share of a webhook's deliveries.
type NodeStatus struct {
	Node string `json:"node"`
	EndpointStats
}

// Status is a webhook's delivery counters over the cluster: the sums of
// every node that answered, and each node's share. One node delivers a
// webhook at a time, so only that node has changes queued or in flight;
// the others' counters say what they delivered before it took over.
type Status struct {
	Webhook string `json:"webhook"`
	EndpointStats
	Nodes []NodeStatus `json:"nodes"`
}

// statusRequest is the body of a request on SubjectStatus.
type statusRequest struct {
	ID string `json:"id"`
}

// Status gathers the counters of the webhook id from this node and, for
// StatusWait, from the other nodes' answers on SubjectStatus. It does not
// check that the webhook exists.
func (s *Service) Status(ctx context.Context, id string) (Status, error) {
	st := Status{Webhook: id, Nodes: []NodeStatus{}}
	if local, ok := s.EndpointStats(id); ok {
		st.Nodes = append(st.Nodes, NodeStatus{s.cfg.NodeID, local})
	}
	nc := s.cfg.Conn
	inbox := nc.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return Status{}, fmt.Errorf("webhook: status: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	req, _ := json.Marshal(statusRequest{ID: id})
	if err := nc.PublishRequest(SubjectStatus, inbox, req); err != nil {
		return Status{}, fmt.Errorf("webhook: status: %w", err)
	}
	wctx, cancel := context.WithTimeout(ctx, s.cfg.StatusWait)
	defer cancel()
	for {
		m, err := sub.NextMsgWithContext(wctx)
		if err != nil {
			break // the wait is over
		}
		var ns NodeStatus
		if json.Unmarshal(m.Data, &ns) != nil || ns.Node == s.cfg.NodeID {
			continue
		}
		st.Nodes = append(st.Nodes, ns)
	}
	if err := ctx.Err(); err != nil {
		return Status{}, err
	}
	for _, ns := range st.Nodes {
		st.add(ns.EndpointStats)
	}
	return st, nil
}

// onStatusRequest answers with this node's counters of the webhook asked
// for, if it knows it.
func (s *Service) onStatusRequest(m *nats.Msg) {
	var req statusRequest
	if json.Unmarshal(m.Data, &req) != nil || m.Reply == "" {
		return
	}
	local, ok := s.EndpointStats(req.ID)
	if !ok {
		return
	}
	b, _ := json.Marshal(NodeStatus{s.cfg.NodeID, local})
	if err := m.Respond(b); err != nil {
		s.log.Debug("webhook: status reply failed", zap.Error(err))
	}
}
