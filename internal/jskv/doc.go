// Package jskv holds the JetStream helpers that membership, presence,
// webhooks and the history share: creating or binding a bucket or a stream,
// reading a stream, watching and following a bucket, all asking again while
// a cluster forms or a stream elects a leader (a request sent then gets no
// answer at all), and telling those errors from real ones.
//
// Entry points: CreateBucket, CreateStream, Stream, Retry, WatchBucket,
// Follow, Transient.
package jskv
