/* PCI configuration mechanism #1, the host bridge, and BAR sizing. */
#include "unit.h"

#include <errno.h>

#include "hw/pci.h"

static struct pci_bus bus;

static int setup(void **state)
{
	(void)state;
	pci_bus_init(&bus);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	pci_bus_destroy(&bus);
	return 0;
}

static uint32_t config_read(unsigned int slot, unsigned int offset, unsigned int size)
{
	pci_config_address_ops.write(&bus, 0, 0x80000000U | slot << 11 | (offset & 0xFC), 4);
	return (uint32_t)pci_config_data_ops.read(&bus, offset & 3, size);
}

static void config_write(unsigned int slot, unsigned int offset, uint32_t value, unsigned int size)
{
	pci_config_address_ops.write(&bus, 0, 0x80000000U | slot << 11 | (offset & 0xFC), 4);
	pci_config_data_ops.write(&bus, offset & 3, value, size);
}

static void test_host_bridge_ids(void **state)
{
	(void)state;
	assert_int_equal(config_read(0, PCI_VENDOR_ID, 2), PCI_VENDOR_ID_REDHAT);
	assert_int_equal(config_read(0, PCI_DEVICE_ID, 2), PCI_DEVICE_ID_REDHAT_HOST_BRIDGE);
	assert_int_equal(config_read(0, PCI_CLASS_REVISION, 4) >> 16, PCI_CLASS_BRIDGE_HOST);
	assert_int_equal(config_read(0, PCI_HEADER_TYPE, 1), PCI_HEADER_TYPE_NORMAL);
	/* IDs are read-only. */
	config_write(0, PCI_VENDOR_ID, 0xDEAD, 2);
	assert_int_equal(config_read(0, PCI_VENDOR_ID, 2), PCI_VENDOR_ID_REDHAT);
}

static void test_address_register(void **state)
{
	(void)state;
	pci_config_address_ops.write(&bus, 0, 0x80001234, 4);
	assert_int_equal(pci_config_address_ops.read(&bus, 0, 4), 0x80001234);
	/* Byte accesses do not touch the latch (Linux probes for mechanism #1 this way). */
	pci_config_address_ops.write(&bus, 3, 0x01, 1);
	assert_int_equal(pci_config_address_ops.read(&bus, 0, 4), 0x80001234);
}

static void test_empty_slots_and_disabled_reads(void **state)
{
	(void)state;
	assert_int_equal(config_read(1, PCI_VENDOR_ID, 2), 0xFFFF);
	assert_int_equal(config_read(31, PCI_VENDOR_ID, 4), 0xFFFFFFFF);
	/* Enable bit clear: no configuration cycle at all. */
	pci_config_address_ops.write(&bus, 0, 0x00000000, 4);
	assert_int_equal(pci_config_data_ops.read(&bus, 0, 4), 0xFFFFFFFF);
	/* Other buses are empty. */
	pci_config_address_ops.write(&bus, 0, 0x80010000, 4);
	assert_int_equal(pci_config_data_ops.read(&bus, 0, 2), 0xFFFF);
}

static void test_bar_sizing(void **state)
{
	struct pci_bar_info info;
	struct pci_device dev;
	int slot;

	(void)state;
	pci_device_init(&dev, "test", 0x1AF4, 0x1041, 0x020000);
	assert_int_equal(pci_device_add_bar(&dev, 0, 0x1000, PCI_BAR_MEM32), 0);
	assert_int_equal(pci_device_add_bar(&dev, 1, 0x20, PCI_BAR_IO), 0);
	assert_int_equal(pci_device_add_bar(&dev, 2, 0x4000, PCI_BAR_MEM64), 0);
	assert_int_equal(pci_device_add_bar(&dev, 5, 0x4000, PCI_BAR_MEM64), -EINVAL);
	assert_int_equal(pci_device_add_bar(&dev, 4, 0x3000, PCI_BAR_MEM32), -EINVAL);
	/* I/O BARs may be 4 bytes; memory BARs no less than 16. */
	assert_int_equal(pci_device_add_bar(&dev, 4, 8, PCI_BAR_MEM32), -EINVAL);
	assert_int_equal(pci_device_add_bar(&dev, 4, 2, PCI_BAR_IO), -EINVAL);
	assert_int_equal(pci_device_add_bar(&dev, 4, 4, PCI_BAR_IO), 0);
	slot = pci_bus_add(&bus, &dev);
	assert_int_equal(slot, 1);

	config_write((unsigned int)slot, PCI_BASE_ADDRESS_0, 0xFFFFFFFF, 4);
	assert_int_equal(config_read((unsigned int)slot, PCI_BASE_ADDRESS_0, 4), 0xFFFFF000);
	config_write((unsigned int)slot, PCI_BASE_ADDRESS_1, 0xFFFFFFFF, 4);
	assert_int_equal(config_read((unsigned int)slot, PCI_BASE_ADDRESS_1, 4), 0xFFFFFFE1);
	config_write((unsigned int)slot, PCI_BASE_ADDRESS_2, 0xFFFFFFFF, 4);
	config_write((unsigned int)slot, PCI_BASE_ADDRESS_3, 0xFFFFFFFF, 4);
	assert_int_equal(config_read((unsigned int)slot, PCI_BASE_ADDRESS_2, 4), 0xFFFFC004);
	assert_int_equal(config_read((unsigned int)slot, PCI_BASE_ADDRESS_3, 4), 0xFFFFFFFF);
	config_write((unsigned int)slot, PCI_BASE_ADDRESS_0, 0xC0001000, 4);
	assert_int_equal(config_read((unsigned int)slot, PCI_BASE_ADDRESS_0, 4), 0xC0001000);
	config_write((unsigned int)slot, PCI_BASE_ADDRESS_4, 0xFFFFFFFF, 4);
	assert_int_equal(config_read((unsigned int)slot, PCI_BASE_ADDRESS_4, 4), 0xFFFFFFFD);
	config_write((unsigned int)slot, PCI_BASE_ADDRESS_4, 0xC004, 4);
	assert_true(pci_device_bar(&dev, 4, &info));
	assert_true(info.io);
	assert_int_equal(info.address, 0xC004);
	assert_int_equal(info.size, 4);
	assert_true(pci_device_bar(&dev, 0, &info));
	assert_int_equal(info.size, 0x1000);
	assert_true(pci_device_bar(&dev, 2, &info));
	assert_true(info.mem64);
	assert_int_equal(info.size, 0x4000);
	/* An unimplemented BAR stays zero. */
	config_write((unsigned int)slot, PCI_BASE_ADDRESS_5, 0xFFFFFFFF, 4);
	assert_int_equal(config_read((unsigned int)slot, PCI_BASE_ADDRESS_5, 4), 0);
	/* Command register: only the defined bits stick. */
	config_write((unsigned int)slot, PCI_COMMAND, 0xFFFF, 2);
	assert_int_equal(config_read((unsigned int)slot, PCI_COMMAND, 2),
			 PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_SERR |
				 PCI_COMMAND_INTX_DISABLE);
}

static void test_bus_full(void **state)
{
	struct pci_device devs[PCI_SLOTS];

	(void)state;
	for (unsigned int i = 1; i < PCI_SLOTS; i++) {
		pci_device_init(&devs[i], "filler", 0x1AF4, 0x1040, 0);
		assert_int_equal(pci_bus_add(&bus, &devs[i]), (int)i);
	}
	assert_int_equal(pci_bus_add(&bus, &devs[0]), -ENOSPC);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_host_bridge_ids, setup, teardown),
		cmocka_unit_test_setup_teardown(test_address_register, setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty_slots_and_disabled_reads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bar_sizing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bus_full, setup, teardown),
	};

	return cmocka_run_group_tests_name("pci", tests, NULL, NULL);
}
