//! (f) peak memory of each process (VmHWM), registration's first process included when it was
//! replaced for the stored-applications steps.

use crate::mesh::Mesh;
use crate::procs::Memory;
use crate::report::ProcessMemory;

pub fn measure(
    mesh: &Mesh,
    first_registration_peak: Option<Memory>,
    notes: &mut Vec<String>,
) -> Vec<ProcessMemory> {
    let mut memory = Vec::new();
    for s in mesh.services.iter().chain(std::iter::once(&mesh.echo)) {
        if let (Some(pid), Some(m)) = (s.pid(), s.memory()) {
            memory.push(ProcessMemory {
                process: if s.name == "echo" {
                    "echo (kg-bench echo-server, reference)".into()
                } else {
                    s.name.clone()
                },
                pid,
                memory: m,
            });
        }
    }
    if let Some(old) = first_registration_peak
        && let Some(m) = memory.iter_mut().find(|m| m.process == "registration")
        && old.vm_hwm_kib > m.memory.vm_hwm_kib
    {
        m.memory.vm_hwm_kib = old.vm_hwm_kib;
    }
    if first_registration_peak.is_some() {
        notes.push(
            "registration ran as two processes (the second on the stored-applications database); \
             its peak memory is the larger VmHWM of the two."
                .into(),
        );
    }
    memory
}
