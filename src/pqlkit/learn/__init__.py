"""Learning from outcomes: point-in-time snapshots, lift, fitted points, evaluation."""
