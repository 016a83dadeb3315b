// Package jskv holds the JetStream key-value helpers that membership,
// presence and the webhook store share: creating or binding a bucket and
// watching one, both asking again while a cluster forms, and telling the
// errors of a forming or electing cluster from real ones.
//
// Entry points: CreateBucket, WatchBucket, Transient.
package jskv
