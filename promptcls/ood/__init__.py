"""Out-of-distribution evaluation: a fixed set of sources every training run holds out (`sources`), scored as
`ood_*` metrics (`scoring`), and the paired significance test `select` runs before it replaces a champion
(`paired`)."""
