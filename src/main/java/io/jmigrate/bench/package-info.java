/**
 * The end-to-end throughput harness behind {@code jmigrate bench throughput}: it starts VM
 * processes (jmigrate's own and, when installed, real QEMU's) and drives their migrations over
 * QMP exactly as a management tool would, then reports medians and ranges. Nothing in jmigrate
 * depends on this package.
 */
package io.jmigrate.bench;
