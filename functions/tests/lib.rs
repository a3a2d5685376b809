//! Tests of the Lambda functions live in `lambda/`; this library is empty on purpose.
