"""System benchmark behind `make bench`: worker path vs reference-style loop, cold start,
end-to-end local runs, AWS projections, and the REPORT.md/plots made from them."""
