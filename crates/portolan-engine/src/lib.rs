//! Portolan's scanning engine: what to scan (targets, ports, services table), and how.
