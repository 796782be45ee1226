module smtpd

go 1.22
