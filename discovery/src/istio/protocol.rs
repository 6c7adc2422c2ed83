//! Port protocol names as Istio accepts them: the mesh model's [`Protocol`], shared so that
//! discovery's input model and the contract never disagree on a name.

pub use multicluster::model::Protocol;
