"""A model version's zip: fetched from the deployer only, verified, unpacked safely."""
