# A short code for an AWS region, for names that must be unique per account but not per region
# (IAM roles): us-east-1 -> use1, ap-southeast-2 -> apse2, us-gov-west-1 -> usgw1.
locals {
  words           = split("-", var.region)
  direction_codes = { north = "n", south = "s", east = "e", west = "w", central = "c", northeast = "ne", northwest = "nw", southeast = "se", southwest = "sw" }
  code = join("", concat([local.words[0]], [
    for w in slice(local.words, 1, length(local.words)) :
    can(regex("^[0-9]+$", w)) ? w : lookup(local.direction_codes, w, substr(w, 0, 1))
  ]))
}
