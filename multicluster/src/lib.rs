//! multicluster
