"""cosmic-ai: AstroMAE redshift inference for survey-scale data on serverless AWS."""

__version__ = "0.1.0"
