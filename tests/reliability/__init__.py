"""Reliability and security tests: crashes, outages, model faults, hostile input and load."""
