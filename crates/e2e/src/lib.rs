//! End-to-end tests of the lottery live in `tests/`: each file starts the real `server`
//! binary through `testkit::central` (the one launcher) and, where it is about agencies, real
//! `client` processes against it. This library is empty on purpose.
