"""The device's ingress: other machines reach its models here, with the device's credential."""
