"""The service desk: requests, the people behind them and how to reach them. The one domain
shared by features (the bot and the alerts both speak of requests and people)."""
