//! Motion detection beside the pipeline (`[motion]`): a small luma copy of
//! the raw frames, analysed a few times a second ([`detector`]).

pub mod detector;
