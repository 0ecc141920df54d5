//! The set's Lambda functions as the CLI uses them: invoke one, read its
//! configuration.

use std::collections::BTreeMap;

use aws_sdk_lambda::primitives::Blob;

use super::Aws;
use crate::model::regions::Region;

/// A failed Lambda call.
pub type FunctionError = super::CallError;

/// One function of one region.
#[derive(Debug, Clone)]
pub struct Function {
    pub name: String,
    pub region: Region,
    client: aws_sdk_lambda::Client,
}

/// What an invocation answered.
#[derive(Debug, Clone)]
pub struct Invoked {
    /// Set when the function itself failed (Lambda's `FunctionError`).
    pub function_error: Option<String>,
    pub payload: String,
}

/// A function's configuration, as far as toastrep reads it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Configuration {
    pub state: String,
    pub last_update_status: String,
    /// Base64 SHA-256 of the deployed code.
    pub code_sha256: String,
    pub environment: Environment,
}

/// A function's environment as GetFunctionConfiguration returns it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Environment {
    /// Lambda could not decrypt it for the caller: its code and message.
    pub error: Option<(String, String)>,
    /// `None` when it came back without variables.
    pub variables: Option<BTreeMap<String, String>>,
}

impl Aws {
    /// Function `name` in `region`.
    pub fn function(&self, region: Region, name: &str) -> Function {
        Function {
            name: name.to_owned(),
            region: region.to_owned(),
            client: self.lambda(region),
        }
    }
}

impl Function {
    fn error<E>(&self, operation: &'static str, error: E) -> FunctionError
    where
        E: std::error::Error + aws_sdk_lambda::error::ProvideErrorMetadata + Send + Sync + 'static,
    {
        super::CallError::of(
            operation,
            format!("{} in {}", self.name, self.region),
            error,
        )
    }

    /// Invokes it synchronously with `payload`.
    pub async fn invoke(&self, payload: String) -> Result<Invoked, FunctionError> {
        let out = self
            .client
            .invoke()
            .function_name(&self.name)
            .payload(Blob::new(payload))
            .send()
            .await
            .map_err(|e| self.error("Invoke", e))?;
        Ok(Invoked {
            function_error: out.function_error().map(str::to_owned),
            payload: out
                .payload()
                .map(|p| String::from_utf8_lossy(p.as_ref()).into_owned())
                .unwrap_or_default(),
        })
    }

    /// Its configuration; `None` when there is no such function.
    pub async fn configuration(&self) -> Result<Option<Configuration>, FunctionError> {
        let out = self
            .client
            .get_function_configuration()
            .function_name(&self.name)
            .send()
            .await;
        let out = match out {
            Ok(out) => out,
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                return Ok(None);
            }
            Err(error) => return Err(self.error("GetFunctionConfiguration", error)),
        };
        let environment = out
            .environment()
            .map_or_else(Environment::default, |e| Environment {
                error: e.error().map(|error| {
                    (
                        error.error_code().unwrap_or("no error code").to_owned(),
                        error.message().unwrap_or("no message").to_owned(),
                    )
                }),
                variables: e
                    .variables()
                    .map(|v| v.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
            });
        Ok(Some(Configuration {
            state: out.state().map_or("Unknown", |s| s.as_str()).to_owned(),
            last_update_status: out
                .last_update_status()
                .map_or("Unknown", |s| s.as_str())
                .to_owned(),
            code_sha256: out.code_sha256().unwrap_or_default().to_owned(),
            environment,
        }))
    }
}
