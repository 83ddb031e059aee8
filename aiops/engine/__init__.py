"""The cycle and its decision-making: pipeline, policy, acting through the guarded writer."""
