"""The HTML report: measurements gathered as data, rendered to one offline file."""
